from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SlackbotConfig(AppConfig):
    name = "slackbot"
    verbose_name = _("Slack")
    default_auto_field = "django.db.models.BigAutoField"
