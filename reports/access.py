"""Who may do what with weekly reports, on portal's primitives (`portal.access`).

Every signed-in user reads every report, drafts included, and the agenda (the portal's rule: everyone
reads everything). A subteam's leads, and admins, start, regenerate, edit and publish its reports.
Reports are for weeks that have begun: a later week has no data yet (404).
"""

from __future__ import annotations

import datetime as dt

from django.http import Http404
from django.shortcuts import get_object_or_404

from portal.access import AnyUser, may_lead, require
from portal.models import Subteam
from reports import weeks
from reports.models import WeeklyReport


def can_write_report(user: AnyUser, subteam_id: int | None) -> bool:
    """Start, regenerate, edit and publish a subteam's reports: its leads and admins."""
    return may_lead(user, subteam_id)


def can_write_report_obj(user: AnyUser, report: WeeklyReport) -> bool:
    return can_write_report(user, report.subteam_id)


def require_begun(week: dt.date) -> None:
    """404 for a week that has not begun."""
    if week > weeks.this_week():
        raise Http404


def get_subteam_to_read(slug: str, week: dt.date | None = None) -> Subteam:
    if week is not None:
        require_begun(week)
    return get_object_or_404(Subteam, slug=slug)


def get_subteam_to_write(user: AnyUser, slug: str, week: dt.date) -> Subteam:
    """The subteam whose report for `week` the user may write, or 404/403."""
    subteam = get_subteam_to_read(slug, week)
    require(can_write_report(user, subteam.pk))
    return subteam


def get_report_to_write(user: AnyUser, slug: str, week: dt.date) -> WeeklyReport:
    """The existing report the user may edit or publish, or 404/403."""
    subteam = get_subteam_to_write(user, slug, week)
    return get_object_or_404(WeeklyReport.objects.select_related("subteam"), subteam=subteam, week=week)
