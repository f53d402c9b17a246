"""Plan vs status: goals (start → due) and milestones on a week or month grid, like a Gantt chart."""

from __future__ import annotations

import datetime as dt
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


def column_of(day: dt.date, columns: list[dt.date]) -> int:
    """1-based grid column holding a day (clamped to the grid)."""
    index = 0
    for i, start in enumerate(columns):
        if start <= day:
            index = i
    return index + 1


def timeline_rows(
    goals: list[Goal], milestones: list[Milestone], columns: list[dt.date]
) -> list[dict[str, Any]]:
    """One group per subteam (the project first), each with goal bars and milestones.

    Every item gets an explicit grid row (row 1 is the header), so the today marker can span all
    rows without pushing auto-placed cells around.
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
        start = column_of(start_day, columns) + 1  # grid line: column 1 holds the labels
        end = column_of(end_day, columns) + 2
        group(goal.subteam)["bars"].append({"goal": goal, "start": start, "end": end})
    for milestone in milestones:
        group(milestone.subteam)["milestones"].append(
            {"m": milestone, "col": column_of(milestone.date, columns) + 1}
        )
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
    days = [today]
    days += [d for g in goals for d in (g.start_date, g.due_date) if d]
    days += [m.date for m in milestones]
    columns = build_columns(min(days), max(days), scale)
    groups = timeline_rows(goals, milestones, columns)
    can_add = access.may_lead_any(request.user)
    context = {
        "scale": scale,
        "columns": columns,
        "column_count": len(columns),
        "today_col": column_of(today, columns),
        "today": today,
        "groups": groups,
        "row_count": 1 + sum(1 + len(g["bars"]) + len(g["milestones"]) for g in groups),
        "today_line": column_of(today, columns) + 1,
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
