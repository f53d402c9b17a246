"""Who may write what through the API: every write endpoint by every persona (see tests/personas.py).

Targets live in the `sft` subteam (lead: its lead; member: a plain member; other: in `pretrain` only),
except the project-wide goal, which only admins manage. Every refusal must leave the database exactly
as it was.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.db.models import Model
from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import Goal, GoalRevision, Membership, Milestone, Task
from tests.personas import ROLES, Team

JSON = "application/json"


@dataclasses.dataclass
class Targets:
    task: Task
    goal: Goal
    project_goal: Goal
    milestone: Milestone


@pytest.fixture
def targets(team: Team) -> Targets:
    lead = team.member("lead")
    goal = services.create_goal(lead, subteam=team.sft, title="JMT bench 0.6")
    return Targets(
        task=services.create_task(
            team.member("member"),
            subteam=team.sft,
            title="Tokenizer sweep",
            assignees=[team.member("member")],
        ),
        goal=goal,
        project_goal=services.create_goal(team.member("admin"), subteam=None, title="Release a 7B model"),
        milestone=services.create_milestone(lead, subteam=team.sft, title="SFT v1", date=dt.date(2025, 3, 1)),
    )


def url(name: str, *args: object) -> str:
    return reverse(f"api:{name}", args=args)


def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table the API writes."""
    models: list[type[Model]] = [Task, Task.assignees.through, Goal, GoalRevision, Milestone]
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in models}


def fields(obj: Model) -> dict[str, Any]:
    return {field.attname: getattr(obj, field.attname) for field in obj._meta.concrete_fields}


Call = Callable[[Client, Targets], Any]


@dataclasses.dataclass
class Write:
    call: Call
    target: Callable[[Targets], Model] | None  # the object a refusal must leave untouched
    expected: dict[str, int]  # role -> status code


def ok(code: int, *allowed: str) -> dict[str, int]:
    """`code` for the allowed roles, 403 for the other signed-in ones, 401 for anon."""
    return {role: code if role in allowed else 401 if role == "anon" else 403 for role in ROLES}


WRITES: dict[str, Write] = {
    "POST task": Write(
        lambda c, t: c.post(
            url("task-list"), {"subteam": "sft", "title": "New", "assignees": ["lead"]}, JSON
        ),
        None,
        ok(201, "admin", "lead", "member"),
    ),
    "PATCH task": Write(
        lambda c, t: c.patch(url("task-detail", t.task.pk), {"status": "doing", "title": "Renamed"}, JSON),
        lambda t: t.task,
        ok(200, "admin", "lead", "member"),
    ),
    "PUT task": Write(
        lambda c, t: c.put(url("task-detail", t.task.pk), {"subteam": "sft", "title": "Replaced"}, JSON),
        lambda t: t.task,
        ok(200, "admin", "lead", "member"),
    ),
    "DELETE task": Write(
        lambda c, t: c.delete(url("task-detail", t.task.pk)),
        lambda t: t.task,
        ok(204, "admin", "lead"),
    ),
    "POST subteam goal": Write(
        lambda c, t: c.post(url("goal-list"), {"subteam": "sft", "title": "New goal", "reason": "why"}, JSON),
        None,
        ok(201, "admin", "lead"),
    ),
    "POST project-wide goal": Write(
        lambda c, t: c.post(url("goal-list"), {"subteam": None, "title": "New goal", "reason": "why"}, JSON),
        None,
        ok(201, "admin"),
    ),
    "PATCH subteam goal": Write(
        lambda c, t: c.patch(
            url("goal-detail", t.goal.pk), {"status": "at_risk", "reason": "slipping"}, JSON
        ),
        lambda t: t.goal,
        ok(200, "admin", "lead"),
    ),
    "PATCH project-wide goal": Write(
        lambda c, t: c.patch(
            url("goal-detail", t.project_goal.pk), {"status": "at_risk", "reason": "slipping"}, JSON
        ),
        lambda t: t.project_goal,
        ok(200, "admin"),
    ),
    "DELETE subteam goal": Write(
        lambda c, t: c.delete(url("goal-detail", t.goal.pk)),
        lambda t: t.goal,
        ok(204, "admin", "lead"),
    ),
    "DELETE project-wide goal": Write(
        lambda c, t: c.delete(url("goal-detail", t.project_goal.pk)),
        lambda t: t.project_goal,
        ok(204, "admin"),
    ),
    "POST milestone": Write(
        lambda c, t: c.post(
            url("milestone-list"), {"subteam": "sft", "title": "v2", "date": "2025-05-01"}, JSON
        ),
        None,
        ok(201, "admin", "lead"),
    ),
    "PATCH milestone": Write(
        lambda c, t: c.patch(url("milestone-detail", t.milestone.pk), {"done": True}, JSON),
        lambda t: t.milestone,
        ok(200, "admin", "lead"),
    ),
    "DELETE milestone": Write(
        lambda c, t: c.delete(url("milestone-detail", t.milestone.pk)),
        lambda t: t.milestone,
        ok(204, "admin", "lead"),
    ),
}

MATRIX = [
    pytest.param(name, role, write.expected[role], id=f"{name}-{role}")
    for name, write in WRITES.items()
    for role in ROLES
]


def assert_refused_without_a_trace(
    response: Any, expected: int, before: dict[str, Any], target: Model | None, target_before: dict[str, Any]
) -> None:
    assert response.status_code == expected, response.content
    assert snapshot() == before
    if target is not None:
        target.refresh_from_db()
        assert fields(target) == target_before


@pytest.mark.parametrize(("name", "role", "expected"), MATRIX)
def test_it_allows_or_refuses_each_write_by_role(
    team: Team, targets: Targets, name: str, role: str, expected: int
) -> None:
    write = WRITES[name]
    target = write.target(targets) if write.target else None
    target_before = fields(target) if target is not None else {}
    before = snapshot()

    response = write.call(team.client(role), targets)

    if expected >= 400:
        assert_refused_without_a_trace(response, expected, before, target, target_before)
        if expected == 401:
            assert response["WWW-Authenticate"] == "Token"
    else:
        assert response.status_code == expected, response.content
        assert snapshot() != before


def test_the_matrix_covers_every_role_for_every_write() -> None:
    assert all(set(write.expected) == set(ROLES) for write in WRITES.values())
    assert len(MATRIX) == len(WRITES) * len(ROLES)


# --- moving an object to another subteam: allowed on the old and on the new one -----------------------


MOVES: list[Any] = [
    # (role, (url name, pk, payload), the object that must stay untouched on refusal, expected status)
    pytest.param(
        "member",
        lambda t: ("task-detail", t.task.pk, {"subteam": "pretrain"}),
        lambda t: t.task,
        403,
        id="member-moves-an-sft-task-to-pretrain",
    ),
    pytest.param(
        "lead",
        lambda t: ("task-detail", t.task.pk, {"subteam": "pretrain"}),
        lambda t: t.task,
        403,
        id="lead-moves-an-sft-task-to-pretrain",
    ),
    pytest.param(
        "other",
        lambda t: ("task-detail", t.task.pk, {"subteam": "pretrain"}),
        lambda t: t.task,
        403,
        id="other-moves-an-sft-task-to-its-own-subteam",
    ),
    pytest.param(
        "admin",
        lambda t: ("task-detail", t.task.pk, {"subteam": "pretrain"}),
        lambda t: t.task,
        200,
        id="admin-moves-an-sft-task-to-pretrain",
    ),
    pytest.param(
        "lead",
        lambda t: ("goal-detail", t.goal.pk, {"subteam": "pretrain", "reason": "r"}),
        lambda t: t.goal,
        403,
        id="lead-moves-an-sft-goal-to-pretrain",
    ),
    pytest.param(
        "lead",
        lambda t: ("goal-detail", t.goal.pk, {"subteam": None, "reason": "r"}),
        lambda t: t.goal,
        403,
        id="lead-makes-an-sft-goal-project-wide",
    ),
    pytest.param(
        "lead",
        lambda t: ("goal-detail", t.project_goal.pk, {"subteam": "sft", "reason": "r"}),
        lambda t: t.project_goal,
        403,
        id="lead-pulls-a-project-wide-goal-into-sft",
    ),
    pytest.param(
        "admin",
        lambda t: ("goal-detail", t.goal.pk, {"subteam": None, "reason": "r"}),
        lambda t: t.goal,
        200,
        id="admin-makes-an-sft-goal-project-wide",
    ),
    pytest.param(
        "lead",
        lambda t: ("milestone-detail", t.milestone.pk, {"subteam": "pretrain"}),
        lambda t: t.milestone,
        403,
        id="lead-moves-an-sft-milestone-to-pretrain",
    ),
    pytest.param(
        "lead",
        lambda t: ("milestone-detail", t.milestone.pk, {"subteam": None}),
        lambda t: t.milestone,
        403,
        id="lead-makes-an-sft-milestone-a-project-milestone",
    ),
    pytest.param(
        "admin",
        lambda t: ("milestone-detail", t.milestone.pk, {"subteam": "pretrain"}),
        lambda t: t.milestone,
        200,
        id="admin-moves-an-sft-milestone-to-pretrain",
    ),
]


@pytest.mark.parametrize(("role", "request_for", "target_of", "expected"), MOVES)
def test_it_refuses_to_move_an_object_to_a_subteam_the_user_may_not_write_to(
    team: Team,
    targets: Targets,
    role: str,
    request_for: Callable[[Targets], tuple[str, int, dict[str, Any]]],
    target_of: Callable[[Targets], Model],
    expected: int,
) -> None:
    name, pk, payload = request_for(targets)
    target = target_of(targets)
    target_before = fields(target)
    before = snapshot()

    response = team.client(role).patch(url(name, pk), payload, content_type=JSON)

    if expected == 200:
        assert response.status_code == 200, response.content
        target.refresh_from_db()
        assert fields(target) != target_before
    else:
        assert_refused_without_a_trace(response, expected, before, target, target_before)


def test_it_refuses_a_lead_pulling_their_subteams_goal_into_a_subteam_they_are_not_in(
    team: Team, targets: Targets
) -> None:
    """`other` leads pretrain but is no one in sft: pulling a pretrain goal into sft is refused."""
    Membership.objects.filter(member=team.member("other")).update(role="lead")
    goal = services.create_goal(team.member("other"), subteam=team.pretrain, title="Dedup 2T tokens")
    before = snapshot()

    response = team.client("other").patch(
        url("goal-detail", goal.pk), {"subteam": "sft", "reason": "r"}, content_type=JSON
    )

    assert_refused_without_a_trace(response, 403, before, goal, fields(goal))


def test_it_allows_a_lead_of_both_subteams_to_move_a_goal_between_them(team: Team, targets: Targets) -> None:
    Membership.objects.create(member=team.member("lead"), subteam=team.pretrain, role="lead")

    response = team.client("lead").patch(
        url("goal-detail", targets.goal.pk), {"subteam": "pretrain", "reason": "handover"}, content_type=JSON
    )

    assert response.status_code == 200, response.content
    targets.goal.refresh_from_db()
    assert targets.goal.subteam == team.pretrain
    assert targets.goal.revisions.first().changes == {"subteam": ["Fine-tuning", "Pretraining data"]}


def test_it_refuses_a_task_created_in_a_subteam_the_user_is_not_in(team: Team, targets: Targets) -> None:
    before = snapshot()

    response = team.client("lead").post(
        url("task-list"), {"subteam": "pretrain", "title": "Not mine"}, content_type=JSON
    )

    assert_refused_without_a_trace(response, 403, before, None, {})


def test_it_refuses_a_write_before_validating_its_payload(team: Team, targets: Targets) -> None:
    """A refused user learns nothing from validation errors: 403, not 400, on an invalid payload."""
    before = snapshot()

    response = team.client("other").patch(
        url("task-detail", targets.task.pk), {"title": ""}, content_type=JSON
    )

    assert_refused_without_a_trace(response, 403, before, targets.task, fields(targets.task))


# --- reads -------------------------------------------------------------------------------------------

LIST_NAMES = ["member-list", "subteam-list", "task-list", "goal-list", "milestone-list"]


def read_urls(team: Team, targets: Targets) -> list[str]:
    return [
        *(url(name) for name in LIST_NAMES),
        url("member-detail", "member"),
        url("subteam-detail", "sft"),
        url("task-detail", targets.task.pk),
        url("goal-detail", targets.goal.pk),
        url("goal-revisions", targets.goal.pk),
        url("milestone-detail", targets.milestone.pk),
    ]


def test_it_refuses_every_read_to_anonymous_users_with_401(team: Team, targets: Targets) -> None:
    client = team.client("anon")

    for address in read_urls(team, targets):
        response = client.get(address)
        assert response.status_code == 401, address
        assert response["WWW-Authenticate"] == "Token", address


@pytest.mark.parametrize("role", [role for role in ROLES if role != "anon"])
def test_it_lets_every_signed_in_role_read_everything(team: Team, targets: Targets, role: str) -> None:
    client = team.client(role)

    for address in read_urls(team, targets):
        assert client.get(address).status_code == 200, address
