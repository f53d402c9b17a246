from __future__ import annotations

import pytest

from portal import services
from portal.models import Goal, GoalRevision
from tests.personas import Team


def goal_data(team: Team, **overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "subteam": "",
        "title": "Build the best ~50B-class LLM",
        "status": "on_track",
        "metric_comparison": ">=",
        "target": "",
        "reason": "",
    }
    data.update(overrides)
    return data


def test_changing_a_goal_requires_a_reason_and_changes_nothing_without_one(team: Team) -> None:
    goal = services.create_goal(None, title="Build the best ~50B-class LLM")
    response = team.client("admin").post(
        f"/goals/{goal.pk}/edit/", goal_data(team, title="Top score on Japanese MT-Bench", reason="  ")
    )
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    goal.refresh_from_db()
    assert goal.title == "Build the best ~50B-class LLM"
    assert goal.revisions.count() == 1  # only the creation


def test_a_goal_change_is_recorded_with_who_what_and_why(team: Team) -> None:
    goal = services.create_goal(None, title="Build the best ~50B-class LLM")
    response = team.client("admin").post(
        f"/goals/{goal.pk}/edit/",
        goal_data(
            team,
            title="Top score on Japanese MT-Bench",
            metric_name="jmt_bench.avg",
            metric_target="7.8",
            reason="Focus the team on one number everyone can check",
        ),
    )
    assert response.status_code == 302
    revision = goal.revisions.first()
    assert revision is not None
    assert revision.author == team.member("admin")
    assert revision.reason == "Focus the team on one number everyone can check"
    assert revision.changes["title"] == ["Build the best ~50B-class LLM", "Top score on Japanese MT-Bench"]
    assert revision.changes["metric_target"] == [None, 7.8]
    page = team.client("member").get(f"/goals/{goal.pk}/").content.decode()
    assert "Focus the team on one number everyone can check" in page
    assert "<del>Build the best ~50B-class LLM</del>" in page


def test_saving_without_changes_records_no_revision(team: Team) -> None:
    goal = services.create_goal(None, title="Stable")
    team.client("admin").post(f"/goals/{goal.pk}/edit/", goal_data(team, title="Stable", reason="no-op"))
    assert GoalRevision.objects.filter(goal=goal).count() == 1


def test_goal_due_date_before_start_is_a_field_error(team: Team) -> None:
    response = team.client("admin").post(
        "/goals/new/", goal_data(team, title="MoE", start_date="2024-07-10", due_date="2024-07-01")
    )
    assert response.status_code == 200
    assert "cannot be before the start" in response.content.decode()
    assert Goal.objects.count() == 0


def test_the_service_refuses_a_blank_reason(db: None) -> None:
    with pytest.raises(services.ServiceError):
        services.update_goal(None, Goal(pk=1), {"title": "x"}, reason=" ")


@pytest.mark.parametrize(
    ("comparison", "target", "baseline", "current", "expected"),
    [
        (">=", 7.8, 3.0, 7.0, 83),
        (">=", 7.8, None, 7.9, 100),
        ("<=", 2.0, 3.0, 2.5, 50),
        (">=", 7.8, 3.0, 2.0, 0),
    ],
)
def test_goal_progress_runs_from_baseline_to_target(
    comparison: str, target: float, baseline: float | None, current: float, expected: int
) -> None:
    goal = Goal(
        metric_name="m",
        metric_comparison=comparison,
        metric_target=target,
        metric_baseline=baseline,
        metric_current=current,
    )
    assert goal.progress == expected
