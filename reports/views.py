"""Weekly reports: the archive (all subteams, one subteam), a report (or the live preview of a week that
has none yet), the lead's edit form, start/regenerate and publish, and the management meeting's agenda.

Every write is a `reports.services` call and every permission a `reports.access` helper.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from portal.access import is_lead, member_of
from portal.health import BLOCKED_TASKS_FLAG
from portal.http import HtmxHttpRequest
from portal.models import Subteam
from reports import access, agenda, data, services, weeks
from reports.forms import ReportForm
from reports.models import WeeklyReport

PAGE_SIZE = 30
ARCHIVE_WEEKS = 6


@require_GET
def archive(request: HtmxHttpRequest) -> HttpResponse:
    """Where every subteam's report for this week stands, and the published reports, a few weeks to a
    page, newest first (`?before=<week>` for older ones)."""
    week = weeks.this_week()
    this = {r.subteam_id: r for r in WeeklyReport.objects.filter(week=week).select_related("subteam")}
    rows = [
        (subteam, this.get(subteam.pk), is_lead(request.user, subteam.pk))
        for subteam in Subteam.objects.all()
    ]
    before = weeks.parse(request.GET.get("before", "")) or week + dt.timedelta(days=7)
    reports, older = _published_weeks(before)
    context = {"week": week, "rows": rows, "reports": _with_totals(reports), "older": older}
    return render(request, "reports/archive.html", context)


def _published_weeks(before: dt.date) -> tuple[list[WeeklyReport], dt.date | None]:
    """The published reports of the `ARCHIVE_WEEKS` weeks before `before` (an index range on the week,
    however long the history), and where the next older page starts (None: no older reports)."""
    oldest = before - dt.timedelta(days=7 * ARCHIVE_WEEKS)
    published = WeeklyReport.objects.filter(state=WeeklyReport.State.PUBLISHED)
    reports = list(
        published.filter(week__lt=before, week__gte=oldest)
        .select_related("subteam", "published_by")
        .order_by("-week", "subteam__name")
    )
    older = published.filter(week__lt=oldest).order_by("-week").values_list("week", flat=True).first()
    return reports, older + dt.timedelta(days=7) if older else None


def _week_nav(week: dt.date) -> dict[str, dt.date | None]:
    return {
        "week_end": weeks.last_day(week),
        "previous_week": week - dt.timedelta(days=7),
        "next_week": week + dt.timedelta(days=7) if week < weeks.this_week() else None,
    }


def _with_totals(reports: Iterable[WeeklyReport]) -> list[tuple[WeeklyReport, data.Totals]]:
    return [(r, data.totals(r.data)) for r in reports]


@require_GET
def subteam_archive(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """One subteam's reports, drafts included, newest first."""
    subteam = get_object_or_404(Subteam, slug=slug)
    reports = WeeklyReport.objects.filter(subteam=subteam).select_related("subteam", "published_by")
    page = Paginator(reports.order_by("-week"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "subteam": subteam,
        "week": weeks.this_week(),
        "page": page,
        "reports": _with_totals(page.object_list),
        "can_write": access.can_write_report(request.user, subteam.pk),
    }
    return render(request, "reports/subteam.html", context)


@require_GET
def report(request: HtmxHttpRequest, slug: str, week: dt.date) -> HttpResponse:
    """A report; for a week with none yet, the week's data as a draft would show it (nothing is written)."""
    subteam = access.get_subteam_to_read(slug, week)
    found = WeeklyReport.objects.select_related("subteam", "author", "updated_by", "published_by").filter(
        subteam=subteam, week=week
    )
    report = found.first()
    context = {
        "subteam": subteam,
        "week": week,
        "report": report,
        "shown": data.present(report.data if report else data.week_data(subteam, week)),
        "history": list(report.events.select_related("actor").order_by("-at", "-pk")[:20]) if report else [],
        "can_write": access.can_write_report(request.user, subteam.pk),
        **_week_nav(week),
    }
    return render(request, "reports/report.html", context)


@require_POST
def draft(request: HtmxHttpRequest, slug: str, week: dt.date) -> HttpResponse:
    """Start the week's draft, or regenerate its data (the lead's text stays)."""
    subteam = access.get_subteam_to_write(request.user, slug, week)
    existed = WeeklyReport.objects.filter(subteam=subteam, week=week).exists()
    report = services.draft(subteam, week, member_of(request.user))
    if report.is_published:
        messages.info(request, _("This report is published: its data stays as it was then."))
    elif existed:
        messages.success(request, _("The week's data was read again. Your text is unchanged."))
    else:
        messages.success(request, _("Draft started from the week's data. Add your own words and publish it."))
    return redirect(report)


def edit(request: HtmxHttpRequest, slug: str, week: dt.date) -> HttpResponse:
    report = access.get_report_to_write(request.user, slug, week)
    initial = {"body": report.body, "issues": report.issues, "revision": report.revision}
    form = ReportForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.edit(member_of(request.user), report, **form.cleaned_data)
        except services.ServiceError as error:
            report.refresh_from_db()  # theirs is shown beside; the next save overwrites knowingly
            form = ReportForm({**form.cleaned_data, "revision": report.revision})
            form.is_valid()
            form.add_error(None, str(error))
        else:
            messages.success(request, _("Report saved."))
            return redirect(report)
    return render(request, "reports/edit.html", {"report": report, "form": form})


@require_POST
def publish(request: HtmxHttpRequest, slug: str, week: dt.date) -> HttpResponse:
    report = access.get_report_to_write(request.user, slug, week)
    if not services.publish(member_of(request.user), report):
        messages.info(request, _("This report was already published."))
    elif report.subteam.slack_channel:
        messages.success(
            request,
            _("Published. It is posted to %(channel)s shortly.") % {"channel": report.subteam.slack_channel},
        )
    else:
        messages.success(request, _("Published. The subteam has no Slack channel, so nothing is posted."))
    return redirect(report)


@require_GET
def agenda_view(request: HtmxHttpRequest, week: dt.date | None = None) -> HttpResponse:
    """The management meeting's agenda: every subteam's blockers, goals at risk and issues, worst first."""
    week = week or weeks.this_week()
    access.require_begun(week)
    rows = agenda.agenda(week)
    context = {
        "week": week,
        "rows": [row for row in rows if row.has_items],
        "quiet": [row for row in rows if not row.has_items],
        "blocked_flag": BLOCKED_TASKS_FLAG,
        **_week_nav(week),
    }
    return render(request, "reports/agenda.html", context)
