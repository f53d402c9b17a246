from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from portal.health import BLOCKED_TASKS_FLAG, Health
from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def subteam_summaries(subteams: list[Subteam], today: dt.date | None = None) -> list[dict[str, Any]]:
    """Per-subteam counts and health (`portal.health`) for the at-a-glance cards, in a fixed number of
    queries. In the order given; `by_trouble` sorts them worst first."""
    today = today or timezone.localdate()
    ids = [s.pk for s in subteams]
    tasks: dict[int, dict[str, int]] = defaultdict(dict)
    for row in Task.objects.filter(subteam_id__in=ids).values("subteam_id", "status").annotate(n=Count("id")):
        tasks[row["subteam_id"]][row["status"]] = row["n"]
    goals: dict[int, dict[str, int]] = defaultdict(dict)
    overdue_goals: dict[int, int] = defaultdict(int)
    open_goal = Q(status__in=[Goal.Status.ON_TRACK, Goal.Status.AT_RISK], due_date__lt=today)
    for row in (
        Goal.objects.filter(subteam_id__in=ids)
        .values("subteam_id", "status")
        .annotate(n=Count("id"), late=Count("id", filter=open_goal))
    ):
        goals[row["subteam_id"]][row["status"]] = row["n"]
        overdue_goals[row["subteam_id"]] += row["late"]
    overdue_milestones = dict(
        Milestone.objects.filter(subteam_id__in=ids, done=False, date__lt=today)
        .values("subteam_id")
        .annotate(n=Count("id"))
        .values_list("subteam_id", "n")
    )
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
        health = Health(
            overdue_milestones=overdue_milestones.get(subteam.pk, 0),
            overdue_goals=overdue_goals[subteam.pk],
            goals_at_risk=at_risk,
            blocked_tasks=counts.get(Task.Status.BLOCKED, 0),
        )
        summaries.append(
            {
                "subteam": subteam,
                "members": members[subteam.pk],
                "leads": leads[subteam.pk],
                "tasks_total": total,
                "tasks_open": total - counts.get(Task.Status.DONE, 0),
                "task_bars": bars,
                "blocked": health.blocked_tasks,
                "goals_open": goal_counts.get(Goal.Status.ON_TRACK, 0) + at_risk,
                "goals_at_risk": at_risk,
                "health": health,
                "level": health.level,
            }
        )
    return summaries


def by_trouble(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cards worst first (the order `portal.health` documents)."""
    return sorted(summaries, key=lambda s: s["health"].sort_key(s["subteam"].name))


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
        "summaries": by_trouble(subteam_summaries(subteams, today)),
        "blocked_flag": BLOCKED_TASKS_FLAG,
        "member_count": Member.objects.count(),
        "subteam_count": len(subteams),
        "open_tasks": Task.objects.exclude(status=Task.Status.DONE).count(),
        "goals_at_risk": Goal.objects.filter(status=Goal.Status.AT_RISK).count(),
    }
    return render(request, "portal/overview.html", context)
