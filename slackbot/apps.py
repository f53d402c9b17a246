import importlib
import logging

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

log = logging.getLogger("slackbot")


class SlackbotConfig(AppConfig):
    name = "slackbot"
    verbose_name = _("Slack")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from scheduler import hooks
        from slackbot import delivery, notify

        hooks.job_state_changed.connect(
            notify.on_job_state_changed, dispatch_uid="slackbot.job_state_changed"
        )
        if delivery.run_from_worker not in hooks.loop_hooks:
            hooks.loop_hooks.append(delivery.run_from_worker)
        # The lending list and the evals app may not be installed yet: connect only to what exists.
        optional = [
            ("lending.signals", "reservation_changed", notify.on_reservation_changed),
            ("evals.signals", "eval_result_landed", notify.on_eval_result_landed),
        ]
        for module_name, signal_name, receiver in optional:
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:
                    log.exception("could not import %s", module_name)
                continue
            signal = getattr(module, signal_name, None)
            if signal is not None:
                signal.connect(receiver, dispatch_uid=f"slackbot.{signal_name}")
