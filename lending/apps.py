from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LendingConfig(AppConfig):
    name = "lending"
    verbose_name = _("GPU lending list")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lending import sync
        from scheduler import hooks

        if sync.sync_reservations not in hooks.cluster_hooks:
            hooks.cluster_hooks.append(sync.sync_reservations)
        if sync.sbatch_options not in hooks.sbatch_option_hooks:
            hooks.sbatch_option_hooks.append(sync.sbatch_options)
