"""A subteam's week in numbers and lists: what a draft shows and a published report keeps (as JSON).

`week_data(subteam, week)` reads it in a fixed number of queries, however big the week:

1. Tasks done in the week (status done, last changed in the week) with their "what we learned" notes,
   and the tasks blocked now, with their assignees.
2. The revisions of the subteam's goals made in the week, with their reasons.
3. Open goals at risk or past their due date, and milestones past their date: the overview's flag
   (`portal.health`), counted the same way.
4. Jobs that ran in the week, with their GPU-hours inside it (`lending.usage.job_gpu_hours_in`).
5. Bookings that held GPUs in the week: GPU-hours booked inside the week, and how many of them the
   subteam's jobs used (overlapping bookings on one cluster counted once).
6. Evaluation results that landed in the week (baselines aside), best first, each against the subteam's
   best on that benchmark before the week.

Values are stored raw (state codes, ISO dates, URL paths) so that a snapshot reads the same in any
language; `present()` turns them into what a page shows, in the reader's language.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Max, Prefetch, Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from evals.models import BENCHMARK_LABELS, EvalResult
from lending.models import Reservation
from lending.usage import HELD_STATES, job_gpu_hours_in
from portal.health import Health
from portal.models import Goal, GoalRevision, Member, Milestone, Subteam, Task
from reports import weeks
from scheduler.models import Job

VERSION = 1
TOP_JOBS = 10
TOP_SCORES = 5
DESCRIPTION_CHARS = 280

Data = dict[str, Any]


def week_data(subteam: Subteam, week: dt.date, now: dt.datetime | None = None) -> Data:
    """The subteam's week (see the module's docstring), as JSON-ready values."""
    now = now or timezone.now()
    start, end = weeks.bounds(week)
    as_of = min(timezone.localdate(now), weeks.last_day(week))
    done, blocked = _tasks(subteam, start, end)
    goals = flagged_goals([subteam.pk], as_of)[subteam.pk]
    milestones = late_milestones([subteam.pk], as_of)[subteam.pk]
    jobs = _jobs(subteam, start, end)
    data: Data = {
        "version": VERSION,
        "week": week.isoformat(),
        "as_of": now.isoformat(),
        "tasks_done": done,
        "tasks_blocked": blocked,
        "goal_changes": _goal_changes(subteam, start, end),
        "goals_flagged": goals,
        "milestones_late": milestones,
        "jobs": _job_summary(jobs, start, end, now),
        "bookings": _bookings(subteam, jobs, start, end, now),
        "scores": _scores(subteam, start, end),
    }
    data["health"] = health_counts(blocked, goals, milestones)
    return data


# --- tasks ------------------------------------------------------------------------------------------------


def _names(members: Iterable[Member]) -> list[str]:
    return [m.display_name for m in members]


def _blocked_row(task: Task) -> dict[str, Any]:
    return {
        "id": task.pk,
        "title": task.title,
        "description": task.description[:DESCRIPTION_CHARS],
        "priority": task.priority,
        "assignees": _names(task.assignees.all()),
        "since": timezone.localdate(task.updated_at).isoformat(),
        "url": task.get_absolute_url(),
    }


def _tasks(subteam: Subteam, start: dt.datetime, end: dt.datetime) -> tuple[list[Any], list[Any]]:
    """Done in the week (by when they last changed: tasks keep no history of their moves), and blocked now."""
    tasks = (
        Task.objects.filter(subteam=subteam)
        .filter(
            Q(status=Task.Status.DONE, updated_at__gte=start, updated_at__lt=end)
            | Q(status=Task.Status.BLOCKED)
        )
        .prefetch_related(Prefetch("assignees", queryset=Member.objects.order_by("display_name")))
        .order_by("-priority", "updated_at", "pk")
    )
    done, blocked = [], []
    for task in tasks:
        if task.status == Task.Status.BLOCKED:
            blocked.append(_blocked_row(task))
            continue
        done.append(
            {
                "id": task.pk,
                "title": task.title,
                "learnings": task.learnings,
                "assignees": _names(task.assignees.all()),
                "url": task.get_absolute_url(),
            }
        )
    return done, blocked


def blocked_tasks(subteam_ids: list[int]) -> dict[int, list[Any]]:
    """The tasks blocked now, per subteam (for the agenda: every subteam in two queries)."""
    found: dict[int, list[Any]] = defaultdict(list)
    tasks = (
        Task.objects.filter(subteam_id__in=subteam_ids, status=Task.Status.BLOCKED)
        .prefetch_related(Prefetch("assignees", queryset=Member.objects.order_by("display_name")))
        .order_by("-priority", "updated_at", "pk")
    )
    for task in tasks:
        found[task.subteam_id].append(_blocked_row(task))
    return found


# --- goals and milestones ----------------------------------------------------------------------------------


def _goal_changes(subteam: Subteam, start: dt.datetime, end: dt.datetime) -> list[Any]:
    revisions = (
        GoalRevision.objects.filter(goal__subteam=subteam, created_at__gte=start, created_at__lt=end)
        .select_related("goal", "author")
        .order_by("created_at", "pk")
    )
    return [
        {
            "goal_id": rev.goal_id,
            "goal": rev.goal.title,
            "url": rev.goal.get_absolute_url(),
            "at": rev.created_at.isoformat(),
            "author": rev.author.display_name if rev.author else "",
            "source": rev.source,
            "reason": rev.reason,
            "created": rev.is_creation,
            "changes": []
            if rev.is_creation
            else [[name, *rev.changes[name]] for name in Goal.TRACKED_FIELDS if name in rev.changes],
        }
        for rev in revisions
    ]


def flagged_goals(subteam_ids: list[int], as_of: dt.date) -> dict[int, list[Any]]:
    """Open goals marked at risk or past their due date on `as_of`, per subteam."""
    found: dict[int, list[Any]] = defaultdict(list)
    goals = Goal.objects.filter(
        Q(status=Goal.Status.AT_RISK) | Q(due_date__lt=as_of),
        subteam_id__in=subteam_ids,
        status__in=[Goal.Status.ON_TRACK, Goal.Status.AT_RISK],
    ).order_by("due_date", "pk")
    for goal in goals:
        found[goal.subteam_id or 0].append(
            {
                "id": goal.pk,
                "title": goal.title,
                "status": goal.status,
                "due": goal.due_date.isoformat() if goal.due_date else None,
                "late": goal.due_date is not None and goal.due_date < as_of,
                "progress": goal.progress,
                "url": goal.get_absolute_url(),
            }
        )
    return found


def late_milestones(subteam_ids: list[int], as_of: dt.date) -> dict[int, list[Any]]:
    found: dict[int, list[Any]] = defaultdict(list)
    for milestone in Milestone.objects.filter(subteam_id__in=subteam_ids, done=False, date__lt=as_of):
        found[milestone.subteam_id or 0].append(
            {"title": milestone.title, "date": milestone.date.isoformat()}
        )
    return found


def health_counts(blocked: list[Any], goals: list[Any], milestones: list[Any]) -> dict[str, int]:
    """The counts `portal.health.Health` flags a subteam by."""
    return {
        "overdue_milestones": len(milestones),
        "overdue_goals": sum(1 for g in goals if g["late"]),
        "goals_at_risk": sum(1 for g in goals if g["status"] == Goal.Status.AT_RISK),
        "blocked_tasks": len(blocked),
    }


def health(data: Data) -> Health:
    return Health(**data.get("health", {}))


# --- jobs and bookings -------------------------------------------------------------------------------------


def _jobs(subteam: Subteam, start: dt.datetime, end: dt.datetime) -> list[Job]:
    """The subteam's jobs that ran at some time in the week."""
    return list(
        Job.objects.filter(subteam=subteam, started_at__isnull=False, started_at__lt=end)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start))
        .select_related("owner")
        .only(
            "id",
            "name",
            "state",
            "gpus",
            "gpu_hours",
            "started_at",
            "ended_at",
            "cluster_id",
            "owner__display_name",
        )
    )


def _job_summary(jobs: list[Job], start: dt.datetime, end: dt.datetime, now: dt.datetime) -> dict[str, Any]:
    hours = {job.pk: job_gpu_hours_in(job, start, min(end, now), now) for job in jobs}
    states: dict[str, int] = defaultdict(int)
    for job in jobs:
        states[job.state] += 1
    top = sorted(jobs, key=lambda job: (-hours[job.pk], job.name))[:TOP_JOBS]
    return {
        "count": len(jobs),
        "gpu_hours": round(sum(hours.values()), 1),
        "states": sorted(states.items(), key=lambda item: (-item[1], item[0])),
        "top": [
            {
                "id": str(job.pk),
                "name": job.name,
                "state": job.state,
                "owner": job.owner.display_name,
                "gpu_hours": round(hours[job.pk], 1),
                "url": job.get_absolute_url(),
            }
            for job in top
        ],
    }


def _merged(windows: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def _bookings(
    subteam: Subteam, jobs: list[Job], start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> dict[str, Any]:
    bookings = list(
        Reservation.objects.filter(subteam=subteam, state__in=HELD_STATES, start__lt=end, end__gt=start)
        .select_related("cluster")
        .order_by("start", "pk")
    )
    items: list[dict[str, Any]] = []
    windows: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for r in bookings:
        lo, hi = max(r.start, start), min(r.end, end)
        booked = r.held_gpus * (hi - lo).total_seconds() / 3600
        used_to = min(hi, now)
        on_cluster = [job for job in jobs if job.cluster_id == r.cluster_id]
        used = sum(job_gpu_hours_in(job, lo, used_to, now) for job in on_cluster) if used_to > lo else 0.0
        if used_to > lo:
            windows[r.cluster_id].append((lo, used_to))
        items.append(
            {
                "id": r.pk,
                "what": r.what,
                "cluster": r.cluster.name,
                "start": r.start.isoformat(),
                "end": r.end.isoformat(),
                "purpose": r.purpose,
                "gpu_hours": round(booked, 1),
                "used": round(used, 1),
                "url": r.get_absolute_url(),
            }
        )
    inside = sum(
        job_gpu_hours_in(job, lo, hi, now)
        for cluster_id, spans in windows.items()
        for lo, hi in _merged(spans)
        for job in jobs
        if job.cluster_id == cluster_id
    )
    return {
        "count": len(items),
        "gpu_hours": round(sum(i["gpu_hours"] for i in items), 1),
        "used_inside": round(inside, 1),
        "items": items,
    }


# --- scores ------------------------------------------------------------------------------------------------


def _scores(subteam: Subteam, start: dt.datetime, end: dt.datetime) -> list[Any]:
    mine = EvalResult.objects.filter(subteam=subteam, is_baseline=False, average__isnull=False)
    new = list(
        mine.filter(created_at__gte=start, created_at__lt=end).order_by("-average", "created_at", "pk")[
            :TOP_SCORES
        ]
    )
    if not new:
        return []
    before = dict(
        mine.filter(created_at__lt=start, benchmark__in={r.benchmark for r in new})
        .values("benchmark")
        .annotate(best=Max("average"))
        .values_list("benchmark", "best")
    )
    best_so_far: dict[str, float] = {}
    rows = []
    for r in new:
        assert r.average is not None
        previous = before.get(r.benchmark)
        rows.append(
            {
                "id": r.pk,
                "model": r.model_name,
                "benchmark": r.benchmark,
                "average": r.average,
                "previous_best": previous,
                "new_best": (previous is None or r.average > previous) and r.benchmark not in best_so_far,
                "at": r.created_at.isoformat(),
                "url": r.get_absolute_url(),
            }
        )
        best_so_far.setdefault(r.benchmark, r.average)
    return rows


# --- reading it back -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Totals:
    """The headline numbers of a week (cards, the archive's rows, Slack)."""

    tasks_done: int
    blocked: int
    goal_changes: int
    jobs: int
    gpu_hours_used: float
    gpu_hours_booked: float
    best: dict[str, Any] | None


def totals(data: Data) -> Totals:
    scores = data.get("scores") or []
    return Totals(
        tasks_done=len(data.get("tasks_done") or []),
        blocked=len(data.get("tasks_blocked") or []),
        goal_changes=len(data.get("goal_changes") or []),
        jobs=(data.get("jobs") or {}).get("count", 0),
        gpu_hours_used=(data.get("jobs") or {}).get("gpu_hours", 0.0),
        gpu_hours_booked=(data.get("bookings") or {}).get("gpu_hours", 0.0),
        best=scores[0] if scores else None,
    )


def _label(choices: Any, value: Any) -> Any:
    return dict(choices).get(value, value)


def _goal_field(name: str, old: Any, new: Any) -> tuple[str, Any, Any]:
    field = Goal._meta.get_field(name)
    choices = getattr(field, "choices", None) or []
    return str(getattr(field, "verbose_name", name)), _label(choices, old), _label(choices, new)


def present_blocked(rows: list[Any]) -> list[Any]:
    return [{**t, "since": parse_date(t["since"])} for t in rows]


def present_goals(rows: list[Any]) -> list[Any]:
    return [
        {
            **g,
            "due": parse_date(g["due"]) if g["due"] else None,
            "status_label": _label(Goal.Status.choices, g["status"]),
        }
        for g in rows
    ]


def present_milestones(rows: list[Any]) -> list[Any]:
    return [{**m, "date": parse_date(m["date"])} for m in rows]


def present(data: Data) -> Data:
    """The stored data with what a page shows added: dates as dates, labels in the active language."""
    if not data:
        return {}
    shown = {**data, "totals": totals(data), "health_flag": health(data)}
    shown["as_of"] = parse_datetime(data["as_of"]) if data.get("as_of") else None
    shown["goal_changes"] = [
        {
            **rev,
            "at": parse_datetime(rev["at"]),
            "change_list": [_goal_field(name, old, new) for name, old, new in rev["changes"]],
        }
        for rev in data.get("goal_changes", [])
    ]
    shown["tasks_blocked"] = present_blocked(data.get("tasks_blocked", []))
    shown["goals_flagged"] = present_goals(data.get("goals_flagged", []))
    shown["milestones_late"] = present_milestones(data.get("milestones_late", []))
    jobs = data.get("jobs") or {"count": 0, "gpu_hours": 0.0, "states": [], "top": []}
    shown["jobs"] = {
        **jobs,
        "states": [(state, _label(Job.State.choices, state), n) for state, n in jobs["states"]],
        "top": [{**j, "state_label": _label(Job.State.choices, j["state"])} for j in jobs["top"]],
    }
    bookings = data.get("bookings") or {"count": 0, "gpu_hours": 0.0, "used_inside": 0.0, "items": []}
    shown["bookings"] = {
        **bookings,
        "items": [
            {**b, "start": parse_datetime(b["start"]), "end": parse_datetime(b["end"])}
            for b in bookings["items"]
        ],
    }
    shown["scores"] = [
        {
            **s,
            "benchmark_label": BENCHMARK_LABELS.get(s["benchmark"], s["benchmark"]),
            "at": parse_datetime(s["at"]),
        }
        for s in data.get("scores", [])
    ]
    return shown
