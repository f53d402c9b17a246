"""The management meeting's agenda for a week: every subteam's blocked tasks, goals at risk or late,
late milestones and the issues its lead wrote in the week's report, worst first.

For a subteam whose report for the week is published, the items are the report's snapshot (what was
true when it was published); for the others they are read live, for every subteam at once, in a fixed
number of queries. The flag and the order are `portal.health`'s, the overview's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from portal.health import Health, Level
from portal.models import Subteam
from reports import data, weeks
from reports.models import WeeklyReport


@dataclass(frozen=True)
class AgendaRow:
    subteam: Subteam
    report: WeeklyReport | None
    blocked: list[Any]
    goals: list[Any]
    milestones: list[Any]
    health: Health
    from_snapshot: bool  # the published report's snapshot, not live data

    @property
    def level(self) -> Level:
        return self.health.level

    @property
    def issues(self) -> str:
        return self.report.issues if self.report is not None else ""

    @property
    def has_items(self) -> bool:
        return bool(self.blocked or self.goals or self.milestones or self.issues.strip())


def agenda(week: dt.date, now: dt.datetime | None = None) -> list[AgendaRow]:
    """One row per subteam, worst first (`Health.sort_key`)."""
    subteams = list(Subteam.objects.all())
    reports = {
        r.subteam_id: r
        for r in WeeklyReport.objects.filter(week=week).select_related(
            "subteam", "published_by", "updated_by"
        )
    }
    published = {sid for sid, r in reports.items() if r.is_published}
    live = [s.pk for s in subteams if s.pk not in published]
    as_of = min(timezone.localdate(now), weeks.last_day(week))
    blocked = data.blocked_tasks(live)
    goals = data.flagged_goals(live, as_of)
    milestones = data.late_milestones(live, as_of)
    rows = []
    for subteam in subteams:
        report = reports.get(subteam.pk)
        if subteam.pk in published:
            assert report is not None
            items = (
                report.data.get("tasks_blocked", []),
                report.data.get("goals_flagged", []),
                report.data.get("milestones_late", []),
            )
        else:
            items = (blocked[subteam.pk], goals[subteam.pk], milestones[subteam.pk])
        rows.append(
            AgendaRow(
                subteam=subteam,
                report=report,
                blocked=data.present_blocked(items[0]),
                goals=data.present_goals(items[1]),
                milestones=data.present_milestones(items[2]),
                health=Health(**data.health_counts(*items)),
                from_snapshot=subteam.pk in published,
            )
        )
    return sorted(rows, key=lambda row: row.health.sort_key(row.subteam.name))
