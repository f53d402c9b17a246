"""Every change to a weekly report goes through one function here (web, API and Slack alike).

Callers check permissions first (`reports.access`); these functions check only the data. Each change
writes its `ReportEvent` in the same transaction: the history, and for publications the row the Slack
outbox turns into one message to the subteam's channel.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.models import Member, Subteam
from portal.services import ServiceError
from reports import data, weeks
from reports.models import ReportEvent, WeeklyReport

__all__ = ["ServiceError", "draft", "edit", "publish"]


def draft(
    subteam: Subteam, week: dt.date, actor: Member | None = None, now: dt.datetime | None = None
) -> WeeklyReport:
    """The subteam's report for the week with its data generated afresh: started if there is none,
    regenerated if it is a draft (the lead's text is left as it is), returned unchanged once published."""
    now = now or timezone.now()
    week = weeks.monday_of(week)
    if week > weeks.this_week(now):
        raise ServiceError(_("That week has not begun: there is nothing to report yet."))
    fresh = data.week_data(subteam, week, now)
    with transaction.atomic():
        report, created = WeeklyReport.objects.get_or_create(
            subteam=subteam,
            week=week,
            defaults={
                "data": fresh,
                "generated_at": now,
                "author": actor,
                "created_at": now,
                "updated_at": now,
                "updated_by": actor,
            },
        )
        if created:
            ReportEvent.objects.create(report=report, kind=ReportEvent.Kind.CREATED, actor=actor, at=now)
            return report
        regenerated = WeeklyReport.objects.filter(pk=report.pk, state=WeeklyReport.State.DRAFT).update(
            data=fresh, generated_at=now
        )
        if regenerated:
            ReportEvent.objects.create(report=report, kind=ReportEvent.Kind.REGENERATED, actor=actor, at=now)
    report.refresh_from_db()
    return report


def edit(
    actor: Member | None, report: WeeklyReport, *, body: str, issues: str, revision: int
) -> WeeklyReport:
    """Save the lead's text. `revision` is the one the editor started from: if someone saved in
    between, nothing is overwritten (ServiceError). The whole text is kept in the history."""
    body, issues = body.strip(), issues.strip()
    if (body, issues) == (report.body, report.issues) and revision == report.revision:
        return report
    now = timezone.now()
    with transaction.atomic():
        saved = WeeklyReport.objects.filter(pk=report.pk, revision=revision).update(
            body=body, issues=issues, revision=F("revision") + 1, updated_at=now, updated_by=actor
        )
        if not saved:
            raise ServiceError(
                _(
                    "Someone saved this report after you opened it. Your text is still in the form: compare it with theirs and save again."
                )
            )
        ReportEvent.objects.create(
            report=report, kind=ReportEvent.Kind.EDITED, actor=actor, at=now, body=body, issues=issues
        )
    report.refresh_from_db()
    return report


def publish(actor: Member | None, report: WeeklyReport, now: dt.datetime | None = None) -> bool:
    """Publish a draft with its data generated once more and frozen (the snapshot the archive shows).
    False when it was already published: nothing changes and nothing more is posted."""
    now = now or timezone.now()
    fresh = data.week_data(report.subteam, report.week, now)
    with transaction.atomic():
        published = WeeklyReport.objects.filter(pk=report.pk, state=WeeklyReport.State.DRAFT).update(
            state=WeeklyReport.State.PUBLISHED,
            data=fresh,
            generated_at=now,
            published_at=now,
            published_by=actor,
            updated_at=now,
            updated_by=actor,
        )
        if published:
            report.refresh_from_db(fields=["body", "issues"])
            ReportEvent.objects.create(
                report=report,
                kind=ReportEvent.Kind.PUBLISHED,
                actor=actor,
                at=now,
                body=report.body,
                issues=report.issues,
            )
    report.refresh_from_db()
    return bool(published)
