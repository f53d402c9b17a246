from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LendingConfig(AppConfig):
    name = "lending"
    verbose_name = _("GPU lending list")
    default_auto_field = "django.db.models.BigAutoField"
