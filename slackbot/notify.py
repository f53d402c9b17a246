"""What the portal tells subteam channels. Receivers only insert an outbox row (`Notification`):
they never wait on Slack, so a job's state change is never held up by it."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import translation
from django.utils.translation import gettext as _

from slackbot.models import Notification

log = logging.getLogger("slackbot")


def link(path: str) -> str:
    """An absolute portal URL for a path from reverse()/get_absolute_url()."""
    return f"{settings.PORTAL_BASE_URL}{path}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def enqueue(channel: str, event_key: str, text: str, blocks: list[dict[str, Any]] | None = None) -> bool:
    """Insert a notification unless one for this event exists; False when it did or no channel is set."""
    if not channel:
        return False
    try:
        with transaction.atomic():
            Notification.objects.create(
                channel=channel, event_key=event_key[:200], text=text, blocks=blocks or []
            )
    except IntegrityError:
        return False
    return True


def _section(text: str) -> list[dict[str, Any]]:
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


# --- jobs ------------------------------------------------------------------------------------------------


def job_text(job: Any) -> str:
    """`*name* failed (exit 3) after 0:12:04 — <link>`, in the portal's language."""
    with translation.override(settings.LANGUAGE_CODE):
        if job.succeeded:
            headline = _("Job %(name)s finished: %(state)s") % {
                "name": job.name,
                "state": job.get_state_display(),
            }
        else:
            headline = _("Job %(name)s ended: %(state)s") % {
                "name": job.name,
                "state": job.get_state_display(),
            }
        details = [
            _("exit code %(code)s") % {"code": "–" if job.exit_code is None else job.exit_code},
            _("ran %(duration)s") % {"duration": duration(job.runtime)},
            _("owner %(owner)s") % {"owner": job.owner.display_name},
        ]
        return f"{headline} ({', '.join(details)})\n{link(job.get_absolute_url())}"


def on_job_state_changed(sender: Any, job: Any, old: str, new: str, **kwargs: Any) -> None:
    if new not in job.TERMINAL_STATES:
        return
    try:
        text = job_text(job)
        enqueue(job.subteam.slack_channel, f"job:{job.pk}:{new}", text, _section(text))
    except Exception:
        log.exception("could not queue the Slack notification for job %s", job.pk)


# --- reservations (lending list) ----------------------------------------------------------------------------

RESERVATION_EVENTS = ("approved", "rejected", "starting", "idle")


def reservation_text(reservation: Any, event: str) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        headlines = {
            "approved": _("GPU reservation approved"),
            "rejected": _("GPU reservation rejected"),
            "starting": _("GPU reservation starting"),
            "idle": _("Reserved GPUs are idle"),
        }
        parts = [f"{headlines[event]}: {reservation}"]
        url = getattr(reservation, "get_absolute_url", None)
        if callable(url):
            parts.append(link(url()))
        return "\n".join(parts)


def on_reservation_changed(sender: Any, reservation: Any, event: str, **kwargs: Any) -> None:
    if event not in RESERVATION_EVENTS:
        return
    try:
        subteam = getattr(reservation, "subteam", None)
        channel = getattr(subteam, "slack_channel", "") or ""
        # "idle" may repeat for one reservation: one message per hour at most.
        suffix = ""
        if event == "idle":
            from django.utils import timezone

            suffix = ":" + timezone.now().strftime("%Y%m%d%H")
        text = reservation_text(reservation, event)
        enqueue(channel, f"reservation:{reservation.pk}:{event}{suffix}", text, _section(text))
    except Exception:
        log.exception(
            "could not queue the Slack notification for reservation %s", getattr(reservation, "pk", "?")
        )


# --- evaluation results ----------------------------------------------------------------------------------


def eval_text(result: Any) -> str:
    with translation.override(settings.LANGUAGE_CODE):
        parts = [_("Evaluation result landed: %(result)s") % {"result": result}]
        url = getattr(result, "get_absolute_url", None)
        if callable(url):
            parts.append(link(url()))
        return "\n".join(parts)


def _subteam_of(result: Any) -> Any:
    for path in ("subteam", "job.subteam", "run.subteam", "run.job.subteam"):
        obj = result
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if obj is not None:
            return obj
    return None


def on_eval_result_landed(sender: Any, result: Any, **kwargs: Any) -> None:
    try:
        channel = getattr(_subteam_of(result), "slack_channel", "") or ""
        text = eval_text(result)
        enqueue(channel, f"eval:{type(result).__name__}:{result.pk}", text, _section(text))
    except Exception:
        log.exception("could not queue the Slack notification for eval result %s", getattr(result, "pk", "?"))
