"""Plan vs status: goals (start → due) and milestones on a week or month grid, like a Gantt chart."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal import access, services
from portal.forms import MilestoneForm
from portal.http import HtmxHttpRequest
from portal.models import Goal, Milestone, Subteam


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _next_month(day: dt.date) -> dt.date:
    return (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


def build_columns(first: dt.date, last: dt.date, scale: str) -> list[dt.date]:
    """Column start dates covering first..last: Mondays for weeks, 1st days for months."""
    columns = []
    if scale == "month":
        day = _month_start(first)
        while day <= last:
            columns.append(day)
            day = _next_month(day)
    else:
        day = _monday(first)
        while day <= last:
            columns.append(day)
            day += dt.timedelta(days=7)
    return columns


# A label beside a mark past this share of the track goes on the mark's left, so it stays inside.
FLIP_AFTER = 85.0
# A bar narrower than this share of the track carries its text beside it rather than inside.
NARROW_BAR = 12.0


@dataclass(frozen=True)
class Span:
    """Where the grid's time track starts and how many days it covers; places days as percentages."""

    first: dt.date
    days: int

    @classmethod
    def of(cls, columns: list[dt.date], scale: str) -> Span:
        after = _next_month(columns[-1]) if scale == "month" else columns[-1] + dt.timedelta(days=7)
        return cls(columns[0], (after - columns[0]).days)

    def left(self, day: dt.date) -> float:
        """Percent of the track before the day starts."""
        return round(100 * (day - self.first).days / self.days, 3)

    def middle(self, day: dt.date) -> float:
        return round(100 * ((day - self.first).days + 0.5) / self.days, 3)

    def width(self, start: dt.date, end: dt.date) -> float:
        """Percent of the track from the start of `start` to the end of `end`."""
        return round(100 * ((end - start).days + 1) / self.days, 3)


def header_cells(columns: list[dt.date], span: Span, scale: str, today: dt.date) -> list[dict[str, Any]]:
    """Each week or month of the grid: its first day, where it sits on the track, and if it holds today."""
    ends = [*columns[1:], span.first + dt.timedelta(days=span.days)]
    return [
        {
            "day": start,
            "left": span.left(start),
            "width": span.width(start, end - dt.timedelta(days=1)),
            "today": start <= today < end,
            "scale": scale,
        }
        for start, end in zip(columns, ends, strict=True)
    ]


def timeline_rows(goals: list[Goal], milestones: list[Milestone], span: Span) -> list[dict[str, Any]]:
    """One group per subteam (the project first), each with goal bars and milestones.

    Every item gets its own grid row (row 1 is the header), so two milestones on one day sit one above
    the other, never on top of each other; on its row an item is placed by day, as a percentage of the
    time track, so a month grid still shows which day of the month it is.
    """
    groups: dict[int | None, dict[str, Any]] = {}

    def group(subteam: Subteam | None) -> dict[str, Any]:
        key = subteam.pk if subteam else None
        if key not in groups:
            groups[key] = {"subteam": subteam, "bars": [], "milestones": []}
        return groups[key]

    for goal in goals:
        end_day = goal.due_date or goal.start_date
        if end_day is None:
            continue
        start_day = goal.start_date or end_day
        left, width = span.left(start_day), span.width(start_day, end_day)
        group(goal.subteam)["bars"].append(
            {
                "goal": goal,
                "left": left,
                "width": width,
                "narrow": width < NARROW_BAR,
                "flip": left + width > FLIP_AFTER,
            }
        )
    for milestone in milestones:
        x = span.middle(milestone.date)
        group(milestone.subteam)["milestones"].append({"m": milestone, "x": x, "flip": x > FLIP_AFTER})
    ordered = sorted(
        groups.values(), key=lambda g: (g["subteam"] is not None, g["subteam"].name if g["subteam"] else "")
    )
    row = 2
    for g in ordered:
        g["row"] = row
        row += 1
        for item in [*g["bars"], *g["milestones"]]:
            item["row"] = row
            row += 1
    return ordered


def timeline(request: HtmxHttpRequest) -> HttpResponse:
    scale = "month" if request.GET.get("scale") == "month" else "week"
    goals = list(Goal.objects.select_related("subteam").order_by("start_date", "due_date"))
    milestones = list(Milestone.objects.select_related("subteam"))
    slug = request.GET.get("subteam")
    if slug:
        goals = [g for g in goals if g.subteam and g.subteam.slug == slug]
        milestones = [m for m in milestones if m.subteam and m.subteam.slug == slug]
    today = timezone.localdate()
    days = [
        today,
        *(d for g in goals for d in (g.start_date, g.due_date) if d),
        *(m.date for m in milestones),
    ]
    columns = build_columns(min(days), max(days), scale)
    span = Span.of(columns, scale)
    groups = timeline_rows(goals, milestones, span)
    can_add = access.may_lead_any(request.user)
    context = {
        "scale": scale,
        "headers": header_cells(columns, span, scale, today),
        "column_count": len(columns),
        "today": today,
        "today_x": span.middle(today),
        "groups": groups,
        "row_count": sum(1 + len(g["bars"]) + len(g["milestones"]) for g in groups),
        "subteams": Subteam.objects.all(),
        "subteam_slug": slug or "",
        "milestone_form": MilestoneForm(user=request.user) if can_add else None,
        "manageable": {m.pk for m in milestones if access.can_manage_milestone(request.user, m.subteam_id)},
    }
    return render(request, "portal/timeline.html", context)


def milestone_create(request: HtmxHttpRequest) -> HttpResponse:
    access.require(access.may_lead_any(request.user))
    if request.method == "POST":
        form = MilestoneForm(request.POST, user=request.user)
        if form.is_valid():
            services.create_milestone(access.member_of(request.user), **form.cleaned_data)
            messages.success(request, _("Milestone added."))
            return redirect("timeline")
        access.refuse_unoffered_subteam(form, request.POST, blank_is_a_choice=True)
    else:
        form = MilestoneForm(user=request.user)
    return render(request, "portal/milestone_form.html", {"form": form, "milestone": None})


def milestone_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    milestone = access.get_milestone_to_manage(request.user, pk)
    if request.method == "POST":
        form = MilestoneForm(request.POST, instance=Milestone.objects.get(pk=pk), user=request.user)
        if form.is_valid():
            services.update_milestone(access.member_of(request.user), milestone, **form.cleaned_data)
            messages.success(request, _("Milestone saved."))
            return redirect("timeline")
        access.refuse_unoffered_subteam(form, request.POST)
    else:
        form = MilestoneForm(instance=milestone, user=request.user)
    return render(request, "portal/milestone_form.html", {"form": form, "milestone": milestone})


@require_POST
def milestone_toggle(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    milestone = access.get_milestone_to_manage(request.user, pk)
    milestone = services.update_milestone(access.member_of(request.user), milestone, done=not milestone.done)
    if request.htmx:
        return render(request, "portal/_milestone_check.html", {"m": milestone, "can_manage": True})
    nxt = request.POST.get("next", "")
    return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else "timeline")


@require_POST
def milestone_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    milestone = access.get_milestone_to_manage(request.user, pk)
    services.delete_milestone(access.member_of(request.user), milestone)
    messages.success(request, _("Milestone deleted."))
    return redirect("timeline")
