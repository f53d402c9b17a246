from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MetricsConfig(AppConfig):
    name = "metrics"
    verbose_name = _("Metrics and evaluations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from metrics import ingest, push
        from scheduler import hooks

        if ingest.ingest_cluster not in hooks.cluster_hooks:
            hooks.cluster_hooks.append(ingest.ingest_cluster)
        hooks.job_state_changed.connect(push.on_state_changed, dispatch_uid="metrics-push-state")
        hooks.job_log_appended.connect(push.on_log_appended, dispatch_uid="metrics-push-log")
