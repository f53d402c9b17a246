"""Every write view for every persona: the right status code, and on refusal nothing changed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Task
from tests.personas import ROLES, Team

OK, DENIED, LOGIN = "ok", "denied", "login"


def snapshot() -> dict[str, Any]:
    """Every row of every portal table: equal snapshots mean nothing changed."""
    return {
        "tasks": list(Task.objects.order_by("pk").values()),
        "assignees": list(Task.assignees.through.objects.order_by("pk").values()),
        "goals": list(Goal.objects.order_by("pk").values()),
        "revisions": list(GoalRevision.objects.order_by("pk").values()),
        "milestones": list(Milestone.objects.order_by("pk").values()),
        "memberships": list(Membership.objects.order_by("pk").values()),
        "members": list(Member.objects.order_by("pk").values()),
    }


def _objects(team: Team) -> dict[str, Any]:
    task = Task.objects.create(subteam=team.sft, title="Tune LoRA rank", status="todo")
    goal = Goal.objects.create(subteam=team.sft, title="SFT pipeline runs end to end")
    project_goal = Goal.objects.create(subteam=None, title="Top score on Japanese MT-Bench")
    milestone = Milestone.objects.create(subteam=team.sft, title="SFT starts", date=dt.date(2024, 6, 28))
    return {
        "task": task,
        "goal": goal,
        "project_goal": project_goal,
        "milestone": milestone,
        "membership": Membership.objects.get(member=team.member("member"), subteam=team.sft),
    }


# (name, method+url builder, form data builder, who may)
Case = tuple[
    str, Callable[[Team, dict[str, Any]], str], Callable[[Team, dict[str, Any]], dict[str, Any]], set[str]
]
STAFF = {"admin"}
LEADS = {"admin", "lead"}
MEMBERS = {"admin", "lead", "member"}

CASES: list[Case] = [
    (
        "task create",
        lambda t, o: "/tasks/new/",
        lambda t, o: {"subteam": t.sft.pk, "title": "New task", "status": "todo", "priority": 2},
        MEMBERS,
    ),
    (
        "task quick create",
        lambda t, o: "/tasks/new/",
        lambda t, o: {"quick": "1", "subteam": t.sft.pk, "title": "Quick", "status": "doing"},
        MEMBERS,
    ),
    (
        "task edit",
        lambda t, o: f"/tasks/{o['task'].pk}/edit/",
        lambda t, o: {"subteam": t.sft.pk, "title": "Renamed", "status": "doing", "priority": 3},
        MEMBERS,
    ),
    ("task move", lambda t, o: f"/tasks/{o['task'].pk}/move/", lambda t, o: {"status": "doing"}, MEMBERS),
    ("task delete", lambda t, o: f"/tasks/{o['task'].pk}/delete/", lambda t, o: {}, LEADS),
    (
        "goal create (subteam)",
        lambda t, o: "/goals/new/",
        lambda t, o: {"subteam": t.sft.pk, "title": "G", "status": "on_track", "metric_comparison": ">="},
        LEADS,
    ),
    (
        "goal create (project)",
        lambda t, o: "/goals/new/",
        lambda t, o: {"subteam": "", "title": "G", "status": "on_track", "metric_comparison": ">="},
        STAFF,
    ),
    (
        "goal edit",
        lambda t, o: f"/goals/{o['goal'].pk}/edit/",
        lambda t, o: {
            "subteam": t.sft.pk,
            "title": "Changed",
            "status": "at_risk",
            "metric_comparison": ">=",
            "reason": "Data arrived late",
        },
        LEADS,
    ),
    (
        "project goal edit",
        lambda t, o: f"/goals/{o['project_goal'].pk}/edit/",
        lambda t, o: {
            "subteam": "",
            "title": "Changed",
            "status": "at_risk",
            "metric_comparison": ">=",
            "reason": "Focus",
        },
        STAFF,
    ),
    ("goal delete", lambda t, o: f"/goals/{o['goal'].pk}/delete/", lambda t, o: {}, LEADS),
    (
        "milestone create",
        lambda t, o: "/milestones/new/",
        lambda t, o: {"subteam": t.sft.pk, "title": "DPO starts", "date": "2024-07-10"},
        LEADS,
    ),
    (
        "milestone edit",
        lambda t, o: f"/milestones/{o['milestone'].pk}/edit/",
        lambda t, o: {"subteam": t.sft.pk, "title": "SFT starts (moved)", "date": "2024-06-30"},
        LEADS,
    ),
    ("milestone toggle", lambda t, o: f"/milestones/{o['milestone'].pk}/toggle/", lambda t, o: {}, LEADS),
    ("milestone delete", lambda t, o: f"/milestones/{o['milestone'].pk}/delete/", lambda t, o: {}, LEADS),
    (
        "membership add",
        lambda t, o: "/subteams/sft/members/add/",
        lambda t, o: {"member": t.member("other").pk, "role": "member"},
        LEADS,
    ),
    ("membership end", lambda t, o: f"/memberships/{o['membership'].pk}/end/", lambda t, o: {}, LEADS),
    (
        "membership role",
        lambda t, o: f"/memberships/{o['membership'].pk}/role/",
        lambda t, o: {"role": "lead"},
        LEADS,
    ),
    (
        "profile edit",
        lambda t, o: "/members/member/edit/",
        lambda t, o: {"display_name": "Renamed"},
        {"admin", "member"},
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("name", "url", "data", "allowed"), CASES, ids=[c[0] for c in CASES])
def test_write_view_permissions(
    team: Team,
    role: str,
    name: str,
    url: Callable[..., str],
    data: Callable[..., dict[str, Any]],
    allowed: set[str],
) -> None:
    objects = _objects(team)
    before = snapshot()
    response = team.client(role).post(url(team, objects), data(team, objects))
    after = snapshot()
    if role == "anon":
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
        assert after == before
    elif role in allowed:
        assert response.status_code == 302, response.content[:2000]
        assert after != before, f"{name} by {role} changed nothing"
    else:
        assert response.status_code == 403
        assert after == before


@pytest.mark.parametrize("role", ["lead", "member", "other"])
def test_it_refuses_the_admin_site_to_non_management(team: Team, role: str) -> None:
    response = team.client(role).get("/admin/", follow=True)
    assert response.status_code == 403


def test_it_opens_the_admin_site_to_the_management_team(team: Team) -> None:
    assert team.client("admin").get("/admin/").status_code == 200
    assert team.client("admin").get("/admin/portal/task/").status_code == 200


def test_it_sends_anonymous_admin_visitors_to_the_portal_sign_in(team: Team) -> None:
    response = Client().get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")


@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/subteams/",
        "/subteams/sft/",
        "/tasks/",
        "/goals/",
        "/timeline/",
        "/members/",
        "/members/member/",
    ],
)
def test_anonymous_users_only_see_the_sign_in_page(team: Team, url: str) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={url}"


def test_sign_in_page_is_open(db: None) -> None:
    assert Client().get("/accounts/login/").status_code == 200


@pytest.mark.parametrize("role", ["admin", "lead", "member", "other"])
@pytest.mark.parametrize(
    "url",
    [
        "/",
        "/subteams/",
        "/subteams/sft/",
        "/tasks/",
        "/goals/",
        "/timeline/",
        "/members/",
        "/members/member/",
    ],
)
def test_every_signed_in_user_reads_everything(team: Team, role: str, url: str) -> None:
    assert team.client(role).get(url).status_code == 200


def test_csrf_is_enforced_on_forms(team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="t")
    client = Client(enforce_csrf_checks=True)
    client.force_login(team.users["member"])
    response = client.post(f"/tasks/{task.pk}/move/", {"status": "done"})
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.status == "todo"
