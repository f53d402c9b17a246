from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def subteam_summaries(subteams: list[Subteam]) -> list[dict[str, Any]]:
    """Per-subteam counts for the at-a-glance cards, in a fixed number of queries."""
    ids = [s.pk for s in subteams]
    tasks: dict[int, dict[str, int]] = defaultdict(dict)
    for row in Task.objects.filter(subteam_id__in=ids).values("subteam_id", "status").annotate(n=Count("id")):
        tasks[row["subteam_id"]][row["status"]] = row["n"]
    goals: dict[int, dict[str, int]] = defaultdict(dict)
    for row in Goal.objects.filter(subteam_id__in=ids).values("subteam_id", "status").annotate(n=Count("id")):
        goals[row["subteam_id"]][row["status"]] = row["n"]
    members: dict[int, int] = defaultdict(int)
    leads: dict[int, list[Member]] = defaultdict(list)
    for membership in Membership.objects.filter(subteam_id__in=ids, ended__isnull=True).select_related(
        "member__user"
    ):
        members[membership.subteam_id] += 1
        if membership.role == Membership.Role.LEAD:
            leads[membership.subteam_id].append(membership.member)
    summaries = []
    for subteam in subteams:
        counts = tasks[subteam.pk]
        total = sum(counts.values())
        bars = [
            {
                "status": status,
                "label": label,
                "n": counts.get(status, 0),
                "pct": round(100 * counts.get(status, 0) / total, 1) if total else 0,
            }
            for status, label in Task.Status.choices
        ]
        goal_counts = goals[subteam.pk]
        at_risk = goal_counts.get(Goal.Status.AT_RISK, 0)
        blocked = counts.get(Task.Status.BLOCKED, 0)
        summaries.append(
            {
                "subteam": subteam,
                "members": members[subteam.pk],
                "leads": leads[subteam.pk],
                "tasks_total": total,
                "tasks_open": total - counts.get(Task.Status.DONE, 0),
                "task_bars": bars,
                "blocked": blocked,
                "goals_open": goal_counts.get(Goal.Status.ON_TRACK, 0) + at_risk,
                "goals_at_risk": at_risk,
                "health": "risk" if at_risk or blocked else "ok",
            }
        )
    return summaries


@dataclass(frozen=True)
class GoalCard:
    """A goal on the overview, with the reason of its latest change."""

    goal: Goal
    last_revision: GoalRevision | None


def project_goal_cards() -> list[GoalCard]:
    """The project-wide goals still pursued, each with its latest revision (one query for all)."""
    goals = Goal.objects.filter(subteam__isnull=True).exclude(status=Goal.Status.DROPPED)
    # Revisions are ordered newest first; iterating the prefetched ones asks nothing more.
    return [
        GoalCard(goal, next(iter(goal.revisions.all()), None)) for goal in goals.prefetch_related("revisions")
    ]


def week_bounds(today: dt.date) -> tuple[dt.date, dt.date, dt.date]:
    """Monday of this week, Monday of next week, and the Sunday that ends next week."""
    monday = today - dt.timedelta(days=today.weekday())
    return monday, monday + dt.timedelta(days=7), monday + dt.timedelta(days=13)


def overview(request: HttpRequest) -> HttpResponse:
    today = timezone.localdate()
    this_monday, next_monday, end = week_bounds(today)
    subteams = list(Subteam.objects.all())
    milestones = list(
        Milestone.objects.filter(date__gte=this_monday, date__lte=end)
        .select_related("subteam")
        .order_by("date")
    )
    overdue = list(Milestone.objects.filter(date__lt=this_monday, done=False).select_related("subteam")[:5])
    context = {
        "today": today,
        "project_goals": project_goal_cards(),
        "this_week": [m for m in milestones if m.date < next_monday],
        "next_week": [m for m in milestones if m.date >= next_monday],
        "overdue_milestones": overdue,
        "summaries": subteam_summaries(subteams),
        "member_count": Member.objects.count(),
        "subteam_count": len(subteams),
        "open_tasks": Task.objects.exclude(status=Task.Status.DONE).count(),
        "goals_at_risk": Goal.objects.filter(status=Goal.Status.AT_RISK).count(),
    }
    return render(request, "portal/overview.html", context)
