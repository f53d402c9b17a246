"""A subteam's weekly report: the week's data, made by `reports.data`, beside the lead's own text.

The generated part (`data`, JSON) and the lead's part (`body`, `issues`, Markdown) are separate fields,
so regenerating the data never touches what the lead wrote. Publishing freezes `data`: the archive shows
what was true that week. Every change leaves a `ReportEvent` (the history, and the Slack outbox's rows).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from portal.models import Member, Subteam
from reports import weeks


class WeeklyReport(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", pgettext_lazy("report", "Draft")
        PUBLISHED = "published", pgettext_lazy("report", "Published")

    subteam = models.ForeignKey(
        Subteam, on_delete=models.PROTECT, related_name="weekly_reports", verbose_name=_("subteam")
    )
    week = models.DateField(_("week of"), help_text=_("The Monday the week starts on."))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.DRAFT)
    body = models.TextField(
        _("report"), blank=True, help_text=_("The lead's own words: what happened, what is next (Markdown).")
    )
    issues = models.TextField(
        _("issues"),
        blank=True,
        help_text=_("What the management meeting should know or decide (Markdown)."),
    )
    data: models.JSONField[Any, Any] = models.JSONField(_("data"), default=dict, blank=True)
    generated_at = models.DateTimeField(_("data as of"), default=timezone.now)
    revision = models.PositiveIntegerField(_("revision"), default=0)
    author = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("started by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)
    updated_by = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("updated by"),
    )
    published_at = models.DateTimeField(_("published"), null=True, blank=True)
    published_by = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("published by"),
    )

    class Meta:
        ordering = ["-week", "subteam__name"]
        verbose_name = _("weekly report")
        verbose_name_plural = _("weekly reports")
        constraints = [models.UniqueConstraint(fields=["subteam", "week"], name="one_report_per_week")]
        indexes = [models.Index(fields=["week", "state"], name="report_week_state")]

    def __str__(self) -> str:
        return f"{self.subteam} {self.week:%Y-%m-%d}"

    def get_absolute_url(self) -> str:
        return reverse("reports:report", args=[self.subteam.slug, self.week])

    @property
    def is_published(self) -> bool:
        return self.state == self.State.PUBLISHED

    @property
    def week_end(self) -> dt.date:
        return weeks.last_day(self.week)


class ReportEvent(models.Model):
    """One change to a report: its start, a regeneration of its data, an edit of the lead's text (kept
    whole: the revision history) or its publication (which the Slack outbox posts)."""

    class Kind(models.TextChoices):
        CREATED = "created", _("Draft started")
        REGENERATED = "regenerated", _("Data regenerated")
        EDITED = "edited", _("Text edited")
        PUBLISHED = "published", pgettext_lazy("report", "Published")

    report = models.ForeignKey(WeeklyReport, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("by")
    )
    body = models.TextField(_("report"), blank=True)
    issues = models.TextField(_("issues"), blank=True)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("report event")
        verbose_name_plural = _("report events")

    def __str__(self) -> str:
        return f"{self.report_id} {self.kind} {self.at:%Y-%m-%d %H:%M}"
