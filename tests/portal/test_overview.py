"""The overview flags only subteams that need attention, says what the flags mean, and puts the worst first."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.utils import timezone

from portal.health import BLOCKED_TASKS_FLAG, Health, Level
from portal.models import Goal, Milestone, Subteam, Task
from tests.personas import Team


@pytest.mark.parametrize(
    ("health", "level"),
    [
        (Health(), Level.OK),
        (Health(blocked_tasks=1), Level.OK),
        (Health(blocked_tasks=BLOCKED_TASKS_FLAG), Level.RISK),
        (Health(goals_at_risk=1), Level.RISK),
        (Health(overdue_milestones=1), Level.BEHIND),
        (Health(overdue_goals=1, goals_at_risk=3), Level.BEHIND),
    ],
)
def test_the_flag_follows_the_documented_rule(health: Health, level: Level) -> None:
    assert health.level == level


def test_worse_sorts_first() -> None:
    ranked = sorted(
        [
            ("ok", Health()),
            ("one blocked", Health(blocked_tasks=1)),
            ("risk", Health(goals_at_risk=1)),
            ("risk and blocked", Health(goals_at_risk=1, blocked_tasks=3)),
            ("behind", Health(overdue_milestones=1)),
            ("very behind", Health(overdue_milestones=2, overdue_goals=1)),
        ],
        key=lambda pair: pair[1].sort_key(pair[0]),
    )
    assert [name for name, _ in ranked] == [
        "very behind",
        "behind",
        "risk and blocked",
        "risk",
        "one blocked",
        "ok",
    ]


def card_order(html: str) -> list[tuple[str, str]]:
    return re.findall(r'data-subteam="([^"]+)" data-health="([^"]+)"', html)


def test_overview_orders_subteams_by_trouble_and_flags_only_what_deserves_it(team: Team) -> None:
    today = timezone.localdate()
    late = Subteam.objects.create(name="Agent", slug="agent")
    Milestone.objects.create(subteam=late, title="Demo", date=today - dt.timedelta(days=3))
    Goal.objects.create(subteam=team.pretrain, title="800B tokens", status=Goal.Status.AT_RISK)
    for i in range(BLOCKED_TASKS_FLAG):
        Task.objects.create(subteam=team.sft, title=f"blocked {i}", status=Task.Status.BLOCKED)
    calm = Subteam.objects.create(name="Code", slug="code")
    Task.objects.create(subteam=calm, title="one blocked task", status=Task.Status.BLOCKED)
    done_late = Subteam.objects.create(name="Merging", slug="merge")
    Milestone.objects.create(subteam=done_late, title="Merged", date=today - dt.timedelta(days=3), done=True)
    Goal.objects.create(
        subteam=done_late,
        title="Achieved late",
        status=Goal.Status.ACHIEVED,
        due_date=today - dt.timedelta(1),
    )

    html = team.client("member").get("/").content.decode()
    order = card_order(html)
    assert order[0] == ("agent", "behind")
    # Two at risk: a goal at risk outranks blocked tasks; then the calm ones, by name.
    assert order[1:3] == [("pretrain", "risk"), ("sft", "risk")]
    assert {slug: health for slug, health in order[3:]} == {"code": "ok", "management": "ok", "merge": "ok"}
    assert [slug for slug, _ in order[3:]] == ["code", "management", "merge"]
    assert "1 overdue milestone" in html
    assert 'id="health-legend"' in html
    assert "a goal is marked at risk, or 2 or more tasks are blocked" in html


def test_the_subteam_list_explains_the_flags_too(team: Team) -> None:
    html = team.client("member").get("/subteams/").content.decode()
    assert 'id="health-legend"' in html
    assert [slug for slug, _ in card_order(html)] == ["management", "sft", "pretrain"]
