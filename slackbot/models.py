"""The Slack outbox (notifications waiting to be posted) and the replay guard for slash commands."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Notification(models.Model):
    """A message for a subteam's channel, made from an event row by `slackbot.outbox`; `slackbot.delivery`
    posts it."""

    channel = models.CharField(_("channel"), max_length=80)
    text = models.TextField(_("text"))
    blocks: models.JSONField[Any, Any] = models.JSONField(_("blocks"), default=list, blank=True)
    event_key = models.CharField(
        _("event"), max_length=200, unique=True, help_text=_("One notification per event, whoever sends it.")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    gave_up_at = models.DateTimeField(_("gave up"), null=True, blank=True)
    message_ts = models.CharField(_("Slack message timestamp"), max_length=32, blank=True)
    last_error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("Slack notification")
        verbose_name_plural = _("Slack notifications")

    def __str__(self) -> str:
        return f"{self.channel}: {self.text[:60]}"

    @property
    def is_pending(self) -> bool:
        return self.sent_at is None and self.gave_up_at is None

    @property
    def status(self) -> str:
        if self.sent_at is not None:
            return str(_("sent"))
        if self.gave_up_at is not None:
            return str(_("gave up"))
        return str(_("pending"))


class OutboxCursor(models.Model):
    """How far `slackbot.outbox` has read an event table (job events, booking events, eval results)."""

    source = models.CharField(max_length=40, unique=True)
    last_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.source} > {self.last_id}"


class SeenRequest(models.Model):
    """Signatures of slash command requests already answered, kept for the replay window."""

    signature = models.CharField(max_length=80, unique=True)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.signature
