from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class EvalsConfig(AppConfig):
    name = "evals"
    verbose_name = _("Evaluations")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from evals.collect import collect_eval_results
        from scheduler import hooks

        if collect_eval_results not in hooks.cluster_hooks:
            hooks.cluster_hooks.append(collect_eval_results)
