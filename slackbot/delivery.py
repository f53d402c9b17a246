"""Posting the outbox: each worker cycle (`run_from_worker`) and `manage.py deliver_notifications`.

1. Pick due notifications (not sent, not given up, next_attempt_at passed), oldest first.
2. Claim each with a conditional UPDATE that pushes next_attempt_at past the lease, so two workers
   never post the same row.
3. Post it. Success: sent_at. Failure: attempts + 1 and the next attempt after an exponential backoff
   (or Slack's Retry-After on 429); a permanent error, or the last allowed attempt, gives up and keeps
   the error.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.utils import timezone

from slackbot import outbox, slack
from slackbot.models import Notification

log = logging.getLogger("slackbot")

LEASE = dt.timedelta(minutes=2)
BASE_DELAY_SECONDS = 30
MAX_DELAY_SECONDS = 60 * 60

_warned_no_token = False


def backoff(attempts: int) -> dt.timedelta:
    """Wait after the n-th failed attempt: 30 s, 1 min, 2 min, … at most an hour."""
    return dt.timedelta(seconds=min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2 ** max(0, attempts - 1)))


def deliver_pending(limit: int = 20) -> int:
    """Post up to `limit` due notifications; returns how many were posted."""
    global _warned_no_token
    due = Notification.objects.filter(
        sent_at__isnull=True, gave_up_at__isnull=True, next_attempt_at__lte=timezone.now()
    )
    if not settings.SLACK_BOT_TOKEN:
        if not _warned_no_token and due.exists():
            log.warning("SLACK_BOT_TOKEN is not set: Slack notifications are recorded but not sent")
            _warned_no_token = True
        return 0
    sent = 0
    for pk, next_attempt_at in due.order_by("next_attempt_at", "pk").values_list("pk", "next_attempt_at")[
        :limit
    ]:
        claimed = Notification.objects.filter(
            pk=pk, next_attempt_at=next_attempt_at, sent_at__isnull=True
        ).update(next_attempt_at=timezone.now() + LEASE)
        if claimed and _deliver(Notification.objects.get(pk=pk)):
            sent += 1
    return sent


def _deliver(notification: Notification) -> bool:
    try:
        ts = slack.post_message(notification.channel, notification.text, notification.blocks)
    except slack.SlackError as exc:
        _failed(notification, exc)
        return False
    notification.sent_at = timezone.now()
    notification.message_ts = ts
    notification.attempts += 1
    notification.last_error = ""
    notification.save(update_fields=["sent_at", "message_ts", "attempts", "last_error"])
    return True


def _failed(notification: Notification, exc: slack.SlackError) -> None:
    now = timezone.now()
    notification.attempts += 1
    notification.last_error = str(exc)[:2000]
    if exc.permanent or notification.attempts >= settings.SLACK_MAX_ATTEMPTS:
        notification.gave_up_at = now
        log.error("Slack notification %s to %s given up: %s", notification.pk, notification.channel, exc)
    else:
        delay = backoff(notification.attempts)
        if exc.retry_after is not None:
            delay = max(delay, dt.timedelta(seconds=exc.retry_after))
        notification.next_attempt_at = now + delay
        log.warning(
            "Slack notification %s to %s failed (attempt %s), retrying in %s: %s",
            notification.pk,
            notification.channel,
            notification.attempts,
            delay,
            exc,
        )
    notification.save(update_fields=["attempts", "last_error", "gave_up_at", "next_attempt_at"])


def run_from_worker() -> None:
    """The worker's per-cycle step: new events become notifications, then the due ones are posted.
    Cheap when nothing happened (one query per event source, one for the due notifications)."""
    outbox.collect()
    deliver_pending()
