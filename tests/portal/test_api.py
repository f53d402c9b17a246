"""Behaviour of the REST API under /api/v1/: reads, filters, writes, validation, auth, schema and docs.

Who may write what is in test_api_permissions.py; here the personas act within their rights.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token

from portal import services
from portal.models import Goal, GoalRevision, Membership, Milestone, Subteam, Task
from tests.personas import Team, make_user

JSON = "application/json"
START = dt.date(2025, 1, 10)


def list_url(resource: str) -> str:
    return reverse(f"api:{resource}-list")


def detail_url(resource: str, key: object) -> str:
    return reverse(f"api:{resource}-detail", args=[key])


def make_task(team: Team, title: str = "Tokenizer sweep", **fields: Any) -> Task:
    fields.setdefault("subteam", team.sft)
    return services.create_task(team.member("member"), title=title, **fields)


def make_goal(team: Team, title: str = "JMT bench 0.6", **fields: Any) -> Goal:
    fields.setdefault("subteam", team.sft)
    return services.create_goal(team.member("lead"), title=title, **fields)


def make_milestone(team: Team, title: str = "SFT v1", **fields: Any) -> Milestone:
    fields.setdefault("subteam", team.sft)
    fields.setdefault("date", START)
    return services.create_milestone(team.member("lead"), title=title, **fields)


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(row["title"] for row in response.json()["results"])


# --- tasks ------------------------------------------------------------------------------------------


def test_it_creates_a_task_with_a_subteam_slug_assignee_usernames_and_a_goal_id(team: Team) -> None:
    goal = make_goal(team)
    payload = {
        "subteam": "sft",
        "title": "Run the DPO ablation",
        "assignees": ["member", "lead"],
        "goal": goal.pk,
        "priority": 3,
        "start_date": "2025-01-10",
        "due_date": "2025-01-20",
    }

    response = team.client("member").post(list_url("task"), payload, content_type=JSON)

    assert response.status_code == 201, response.content
    body = response.json()
    task = Task.objects.get(pk=body["id"])
    assert task.subteam == team.sft
    assert task.goal == goal
    assert task.created_by == team.member("member")
    assert set(task.assignees.all()) == {team.member("member"), team.member("lead")}
    assert body["subteam"] == "sft"
    assert sorted(body["assignees"]) == ["lead", "member"]
    assert body["goal"] == goal.pk
    assert body["created_by"] == "member"
    assert body["status"] == "todo"


def test_it_stores_html_in_a_title_as_is_and_returns_it_as_a_json_string(team: Team) -> None:
    title = '<script>alert("hi")</script> & <b>bold</b>'

    response = team.client("member").post(
        list_url("task"), {"subteam": "sft", "title": title}, content_type=JSON
    )

    assert response.status_code == 201
    assert response.json()["title"] == title
    assert Task.objects.get().title == title


def test_it_lists_tasks_with_pagination(team: Team) -> None:
    for i in range(51):
        make_task(team, title=f"Task {i:02}")

    first = team.client("member").get(list_url("task"))
    second = team.client("member").get(list_url("task"), {"page": 2})

    assert first.status_code == 200
    body = first.json()
    assert body["count"] == 51
    assert body["previous"] is None
    assert body["next"] is not None
    assert len(body["results"]) == 50
    assert len(second.json()["results"]) == 1


def test_it_filters_tasks_by_subteam_status_assignee_and_goal(team: Team) -> None:
    goal = make_goal(team)
    make_task(team, title="sft todo", assignees=[team.member("member")], goal=goal)
    make_task(team, title="sft doing", status="doing", assignees=[team.member("lead")])
    make_task(team, title="pretrain todo", subteam=team.pretrain, assignees=[team.member("other")])
    client = team.client("member")

    assert titles(client.get(list_url("task"), {"subteam": "sft"})) == ["sft doing", "sft todo"]
    assert titles(client.get(list_url("task"), {"status": "doing"})) == ["sft doing"]
    assert titles(client.get(list_url("task"), {"assignee": "other"})) == ["pretrain todo"]
    assert titles(client.get(list_url("task"), {"goal": goal.pk})) == ["sft todo"]
    assert titles(client.get(list_url("task"), {"subteam": "sft", "status": "todo"})) == ["sft todo"]


def test_it_refuses_a_task_filter_on_an_unknown_subteam_or_username_with_400(team: Team) -> None:
    client = team.client("member")

    by_subteam = client.get(list_url("task"), {"subteam": "nope"})
    by_assignee = client.get(list_url("task"), {"assignee": "nobody"})

    assert by_subteam.status_code == 400
    assert "subteam" in by_subteam.json()
    assert by_assignee.status_code == 400
    assert "assignee" in by_assignee.json()


def test_it_retrieves_one_task_and_answers_404_for_an_unknown_id(team: Team) -> None:
    task = make_task(team)
    client = team.client("other")

    assert client.get(detail_url("task", task.pk)).json()["title"] == "Tokenizer sweep"
    assert client.get(detail_url("task", task.pk + 1000)).status_code == 404
    assert client.get("/api/v1/tasks/not-a-number/").status_code == 404


def test_it_changes_a_task_status_with_patch_and_keeps_the_other_fields(team: Team) -> None:
    task = make_task(team, assignees=[team.member("member")], description="keep me")
    before = task.updated_at

    response = team.client("member").patch(detail_url("task", task.pk), {"status": "done"}, content_type=JSON)

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.status == "done"
    assert task.description == "keep me"
    assert list(task.assignees.all()) == [team.member("member")]
    assert task.updated_at > before
    assert response.json()["status"] == "done"


def test_it_replaces_a_task_with_put_and_clears_assignees_with_an_empty_list(team: Team) -> None:
    task = make_task(team, assignees=[team.member("member")], description="old")

    response = team.client("lead").put(
        detail_url("task", task.pk),
        {"subteam": "sft", "title": "Renamed", "assignees": [], "status": "blocked"},
        content_type=JSON,
    )

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.title == "Renamed"
    assert task.status == "blocked"
    assert task.assignees.count() == 0
    assert response.json()["assignees"] == []


def test_it_deletes_a_task(team: Team) -> None:
    task = make_task(team)

    response = team.client("lead").delete(detail_url("task", task.pk))

    assert response.status_code == 204
    assert not Task.objects.filter(pk=task.pk).exists()


def test_it_refuses_a_task_due_before_it_starts_with_the_error_on_due_date(team: Team) -> None:
    payload = {"subteam": "sft", "title": "Backwards", "start_date": "2025-02-01", "due_date": "2025-01-01"}

    response = team.client("member").post(list_url("task"), payload, content_type=JSON)

    assert response.status_code == 400
    assert list(response.json()) == ["due_date"]
    assert Task.objects.count() == 0


def test_it_refuses_a_patch_that_moves_the_due_date_before_the_stored_start(team: Team) -> None:
    task = make_task(team, start_date=START, due_date=START + dt.timedelta(days=5))

    response = team.client("member").patch(
        detail_url("task", task.pk), {"due_date": "2025-01-01"}, content_type=JSON
    )

    assert response.status_code == 400
    assert "due_date" in response.json()
    task.refresh_from_db()
    assert task.due_date == START + dt.timedelta(days=5)


@pytest.mark.parametrize("title", ["", "   "])
def test_it_refuses_an_empty_task_title(team: Team, title: str) -> None:
    response = team.client("member").post(
        list_url("task"), {"subteam": "sft", "title": title}, content_type=JSON
    )

    assert response.status_code == 400
    assert "title" in response.json()
    assert Task.objects.count() == 0


def test_it_refuses_an_unknown_subteam_slug_with_a_field_error(team: Team) -> None:
    response = team.client("admin").post(
        list_url("task"), {"subteam": "nope", "title": "x"}, content_type=JSON
    )

    assert response.status_code == 400
    assert response.json() == {"subteam": ["There is no subteam with the slug “nope”."]}
    assert Task.objects.count() == 0


def test_it_refuses_an_unknown_assignee_username_or_goal_id(team: Team) -> None:
    client = team.client("member")

    by_user = client.post(
        list_url("task"), {"subteam": "sft", "title": "x", "assignees": ["ghost"]}, content_type=JSON
    )
    by_goal = client.post(list_url("task"), {"subteam": "sft", "title": "x", "goal": 9999}, content_type=JSON)

    assert by_user.status_code == 400
    assert by_user.json() == {"assignees": ["There is no member with the username “ghost”."]}
    assert by_goal.status_code == 400
    assert "goal" in by_goal.json()
    assert Task.objects.count() == 0


def test_it_refuses_an_unknown_task_status(team: Team) -> None:
    task = make_task(team)

    response = team.client("member").patch(
        detail_url("task", task.pk), {"status": "someday"}, content_type=JSON
    )

    assert response.status_code == 400
    assert "status" in response.json()


# --- goals ------------------------------------------------------------------------------------------


def test_it_creates_a_subteam_goal_and_records_the_creation(team: Team) -> None:
    payload = {
        "subteam": "sft",
        "title": "JMT bench ≥ 0.6",
        "metric_name": "jmt_bench.avg",
        "metric_target": 0.6,
        "metric_baseline": 0.4,
        "metric_current": 0.5,
        "reason": "Agreed at the kickoff.",
    }

    response = team.client("lead").post(list_url("goal"), payload, content_type=JSON)

    assert response.status_code == 201, response.content
    body = response.json()
    goal = Goal.objects.get(pk=body["id"])
    assert goal.subteam == team.sft
    assert goal.created_by == team.member("lead")
    assert body["progress"] == 50
    assert body["is_project_wide"] is False
    assert "reason" not in body
    revision = goal.revisions.get()
    assert revision.is_creation
    assert revision.reason == "Agreed at the kickoff."


def test_it_creates_a_project_wide_goal_with_a_null_subteam(team: Team) -> None:
    response = team.client("admin").post(
        list_url("goal"), {"subteam": None, "title": "Release a 7B model"}, content_type=JSON
    )

    assert response.status_code == 201, response.content
    assert response.json()["subteam"] is None
    assert response.json()["is_project_wide"] is True
    assert Goal.objects.get().subteam is None


def test_it_records_a_revision_with_the_reason_when_a_goal_changes(team: Team) -> None:
    goal = make_goal(team, metric_name="acc", metric_target=0.8)
    client = team.client("lead")

    response = client.patch(
        detail_url("goal", goal.pk),
        {"metric_current": 0.7, "status": "at_risk", "reason": "Eval of run 42."},
        content_type=JSON,
    )

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "at_risk"
    goal.refresh_from_db()
    assert goal.metric_current == 0.7
    history = client.get(reverse("api:goal-revisions", args=[goal.pk]))
    assert history.status_code == 200
    rows = history.json()["results"]
    assert [row["reason"] for row in rows] == ["Eval of run 42.", ""]
    assert rows[0]["changes"] == {"metric_current": [None, 0.7], "status": ["on_track", "at_risk"]}
    assert rows[0]["author"] == "lead"
    assert rows[0]["is_creation"] is False
    assert rows[1]["is_creation"] is True


@pytest.mark.parametrize("payload", [{"status": "at_risk"}, {"status": "at_risk", "reason": "  "}])
def test_it_refuses_a_goal_change_without_a_reason_on_the_reason_field(
    team: Team, payload: dict[str, str]
) -> None:
    goal = make_goal(team)

    response = team.client("lead").patch(detail_url("goal", goal.pk), payload, content_type=JSON)

    assert response.status_code == 400
    assert response.json() == {"reason": ["Say why the goal changes: the reason is kept in its history."]}
    goal.refresh_from_db()
    assert goal.status == "on_track"
    assert goal.revisions.count() == 1


def test_it_refuses_a_goal_put_without_a_reason(team: Team) -> None:
    goal = make_goal(team)

    response = team.client("lead").put(
        detail_url("goal", goal.pk), {"subteam": "sft", "title": "New title"}, content_type=JSON
    )

    assert response.status_code == 400
    assert "reason" in response.json()
    goal.refresh_from_db()
    assert goal.title == "JMT bench 0.6"


def test_it_records_no_revision_for_a_goal_patch_that_changes_nothing(team: Team) -> None:
    goal = make_goal(team)

    response = team.client("lead").patch(
        detail_url("goal", goal.pk), {"status": "on_track", "reason": "No news."}, content_type=JSON
    )

    assert response.status_code == 200
    assert goal.revisions.count() == 1


def test_it_refuses_a_goal_due_before_it_starts(team: Team) -> None:
    payload = {"subteam": "sft", "title": "x", "start_date": "2025-03-01", "due_date": "2025-02-01"}

    response = team.client("lead").post(list_url("goal"), payload, content_type=JSON)

    assert response.status_code == 400
    assert list(response.json()) == ["due_date"]
    assert Goal.objects.count() == 0


def test_it_refuses_an_empty_goal_title_and_an_unknown_subteam(team: Team) -> None:
    client = team.client("admin")

    empty = client.post(list_url("goal"), {"subteam": "sft", "title": ""}, content_type=JSON)
    unknown = client.post(list_url("goal"), {"subteam": "nope", "title": "x"}, content_type=JSON)

    assert empty.status_code == 400
    assert "title" in empty.json()
    assert unknown.status_code == 400
    assert unknown.json() == {"subteam": ["There is no subteam with the slug “nope”."]}
    assert Goal.objects.count() == 0


def test_it_filters_goals_by_subteam_project_wide_and_status(team: Team) -> None:
    make_goal(team, title="sft")
    make_goal(team, title="sft at risk", status="at_risk")
    make_goal(team, title="pretrain", subteam=team.pretrain)
    make_goal(team, title="project", subteam=None)
    client = team.client("other")

    assert titles(client.get(list_url("goal"), {"subteam": "sft"})) == ["sft", "sft at risk"]
    assert titles(client.get(list_url("goal"), {"subteam": "none"})) == ["project"]
    assert titles(client.get(list_url("goal"), {"project_wide": "true"})) == ["project"]
    assert titles(client.get(list_url("goal"), {"project_wide": "false"})) == [
        "pretrain",
        "sft",
        "sft at risk",
    ]
    assert titles(client.get(list_url("goal"), {"status": "at_risk"})) == ["sft at risk"]


def test_it_deletes_a_goal_and_its_history(team: Team) -> None:
    goal = make_goal(team)

    response = team.client("lead").delete(detail_url("goal", goal.pk))

    assert response.status_code == 204
    assert Goal.objects.count() == 0
    assert GoalRevision.objects.count() == 0


def test_it_answers_404_for_the_revisions_of_an_unknown_goal(team: Team) -> None:
    assert team.client("member").get(reverse("api:goal-revisions", args=[999])).status_code == 404


# --- milestones -------------------------------------------------------------------------------------


def test_it_creates_changes_and_deletes_a_milestone(team: Team) -> None:
    client = team.client("lead")

    created = client.post(
        list_url("milestone"), {"subteam": "sft", "title": "SFT v1", "date": "2025-03-01"}, content_type=JSON
    )
    assert created.status_code == 201, created.content
    milestone_id = created.json()["id"]
    changed = client.patch(detail_url("milestone", milestone_id), {"done": True}, content_type=JSON)
    assert changed.status_code == 200
    assert Milestone.objects.get(pk=milestone_id).done is True
    deleted = client.delete(detail_url("milestone", milestone_id))
    assert deleted.status_code == 204
    assert Milestone.objects.count() == 0


def test_it_refuses_a_milestone_without_a_date_or_title(team: Team) -> None:
    response = team.client("lead").post(
        list_url("milestone"), {"subteam": "sft", "title": ""}, content_type=JSON
    )

    assert response.status_code == 400
    assert set(response.json()) == {"title", "date"}
    assert Milestone.objects.count() == 0


def test_it_filters_milestones_by_subteam_and_done(team: Team) -> None:
    make_milestone(team, title="sft open")
    make_milestone(team, title="sft done", done=True)
    make_milestone(team, title="pretrain", subteam=team.pretrain)
    make_milestone(team, title="project", subteam=None)
    client = team.client("member")

    assert titles(client.get(list_url("milestone"), {"subteam": "sft"})) == ["sft done", "sft open"]
    assert titles(client.get(list_url("milestone"), {"done": "true"})) == ["sft done"]
    assert titles(client.get(list_url("milestone"), {"subteam": "sft", "done": "false"})) == ["sft open"]
    assert titles(client.get(list_url("milestone"), {"subteam": "none"})) == ["project"]


# --- members and subteams ---------------------------------------------------------------------------


def test_it_shows_a_member_by_username_with_handles_and_current_memberships(team: Team) -> None:
    member = team.member("member")
    member.github = "member-gh"
    member.huggingface = "member-hf"
    member.wandb = "member-wb"
    member.slack_user_id = "U123"
    member.cluster_account = "u0042"
    member.save()
    old = Membership.objects.create(member=member, subteam=team.pretrain, started=dt.date(2024, 1, 1))
    services.end_membership(None, old, ended=dt.date(2024, 5, 1))

    body = team.client("other").get(detail_url("member", "member")).json()

    assert body["username"] == "member"
    assert body["display_name"] == "Member"
    assert (body["github"], body["huggingface"], body["wandb"]) == ("member-gh", "member-hf", "member-wb")
    assert (body["slack_user_id"], body["cluster_account"]) == ("U123", "u0042")
    assert body["memberships"] == [
        {"subteam": "sft", "subteam_name": "Fine-tuning", "role": "member", "started": "2024-06-01"}
    ]


def test_it_finds_a_member_whose_username_has_a_dot_and_answers_404_for_an_unknown_one(team: Team) -> None:
    make_user("taro.yamada", "Taro")
    client = team.client("member")

    assert client.get(detail_url("member", "taro.yamada")).json()["display_name"] == "Taro"
    assert client.get(detail_url("member", "nobody")).status_code == 404


@pytest.mark.parametrize(
    ("viewer", "sees"), [("admin", True), ("member", True), ("lead", False), ("other", False)]
)
def test_it_shows_onboarding_only_to_admins_and_the_member_themself(
    team: Team, viewer: str, sees: bool
) -> None:
    member = team.member("member")
    member.has_github = True
    member.save()

    detail = team.client(viewer).get(detail_url("member", "member")).json()
    listed = next(
        row
        for row in team.client(viewer).get(list_url("member")).json()["results"]
        if row["username"] == "member"
    )

    for body in (detail, listed):
        if sees:
            assert body["onboarding"]["has_github"] is True
            assert body["onboarding"]["has_slack"] is False
            assert body["onboarding"]["complete"] is False
        else:
            assert body["onboarding"] is None


def test_it_filters_members_by_the_current_members_of_a_subteam(team: Team) -> None:
    former = make_user("former").member
    gone = Membership.objects.create(member=former, subteam=team.sft, started=dt.date(2024, 1, 1))
    services.end_membership(None, gone, ended=dt.date(2024, 3, 1))

    response = team.client("member").get(list_url("member"), {"subteam": "sft"})

    assert sorted(row["username"] for row in response.json()["results"]) == ["lead", "member"]
    assert team.client("member").get(list_url("member"), {"subteam": "nope"}).status_code == 400


def test_it_lists_subteams_with_their_current_member_count(team: Team) -> None:
    former = make_user("former").member
    gone = Membership.objects.create(member=former, subteam=team.sft, started=dt.date(2024, 1, 1))
    services.end_membership(None, gone, ended=dt.date(2024, 3, 1))
    client = team.client("member")

    rows = {row["slug"]: row for row in client.get(list_url("subteam")).json()["results"]}
    sft = client.get(detail_url("subteam", "sft")).json()

    assert {slug: row["member_count"] for slug, row in rows.items()} == {
        "management": 1,
        "sft": 2,
        "pretrain": 1,
    }
    assert sft["purpose"] == "SFT and DPO"
    assert sft["slack_channel"] == "#sft"
    assert sft["member_count"] == 2
    assert client.get(detail_url("subteam", "nope")).status_code == 404


# --- authentication -----------------------------------------------------------------------------------


def test_it_accepts_a_token_in_the_authorization_header(team: Team) -> None:
    token = Token.objects.create(user=team.users["member"])
    client = Client(headers={"Authorization": f"Token {token.key}"})

    listed = client.get(list_url("task"))
    created = client.post(list_url("task"), {"subteam": "sft", "title": "Via token"}, content_type=JSON)

    assert listed.status_code == 200
    assert created.status_code == 201, created.content
    assert Task.objects.get().created_by == team.member("member")


def test_it_refuses_a_wrong_token_and_anonymous_calls_with_401_and_www_authenticate(team: Team) -> None:
    wrong = Client(headers={"Authorization": "Token not-a-real-key"}).get(list_url("task"))
    anonymous = Client().get(list_url("task"))

    assert wrong.status_code == 401
    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"] == "Token"


# --- schema and docs ----------------------------------------------------------------------------------


def test_it_serves_the_openapi_schema_with_every_resource(team: Team) -> None:
    response = team.client("member").get(reverse("api-schema"), {"format": "json"})

    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/v1/members/",
        "/api/v1/members/{username}/",
        "/api/v1/subteams/{slug}/",
        "/api/v1/tasks/",
        "/api/v1/tasks/{id}/",
        "/api/v1/goals/{id}/",
        "/api/v1/goals/{id}/revisions/",
        "/api/v1/milestones/{id}/",
    ):
        assert path in paths


def test_it_serves_swagger_ui_with_its_assets_from_this_server(team: Team) -> None:
    client = team.client("member")

    response = client.get(reverse("api-docs"))

    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    bundle = [url for url in assets if url.endswith("swagger-ui-bundle.js")]
    assert bundle == ["/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"]
    assert not [url for url in assets if url.startswith(("http:", "https:", "//"))]
    # The page's own start-up script (`?script=`, a view: the CSP allows no inline script) before the
    # files: closing a file response ends the request, and with it this test's database connection.
    for url in sorted(assets, key=lambda url: url.startswith("/static/")):
        asset = client.get(url)
        assert asset.status_code == 200, url
        if hasattr(asset, "close"):
            asset.close()


def test_it_generates_a_valid_schema_without_warnings(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    assert "/api/v1/tasks/" in out.read_text()


# --- no N+1 -------------------------------------------------------------------------------------------

_serial = itertools.count()


def add_rows(team: Team, n: int) -> Goal:
    """n of everything every list shows, each with the relations that list serializes."""
    lead = team.member("lead")
    goal = Goal.objects.filter(subteam=team.sft).first() or make_goal(team)
    for _ in range(n):
        k = next(_serial)
        subteam = Subteam.objects.create(name=f"Extra {k}", slug=f"extra-{k}")
        person = make_user(f"extra{k}").member
        Membership.objects.create(member=person, subteam=subteam, role="lead")
        Membership.objects.create(member=person, subteam=team.sft)
        extra_goal = make_goal(team, title=f"Goal {k}", subteam=subteam)
        make_task(team, title=f"Task {k}", assignees=[person, lead], goal=extra_goal, subteam=subteam)
        make_milestone(team, title=f"Milestone {k}", subteam=subteam)
        services.update_goal(lead, goal, {"metric_current": float(k)}, reason=f"Update {k}")
    return goal


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(queries)


# (endpoint, viewer, expected queries) — each includes 2 for the session and its user.
LIST_QUERY_COUNTS = [
    ("member", "admin", 6),  # + count, members, current memberships, is_admin
    ("member", "lead", 7),  # + is_admin and member_of, to decide on onboarding
    ("subteam", "member", 4),  # + count, subteams with annotated member_count
    ("task", "member", 5),  # + count, tasks, assignees
    ("goal", "member", 4),  # + count, goals
    ("milestone", "member", 4),  # + count, milestones
    ("goal-revisions", "member", 5),  # + the goal, count, revisions
]


@pytest.mark.parametrize(("endpoint", "viewer", "expected"), LIST_QUERY_COUNTS)
def test_it_lists_with_the_same_number_of_queries_for_1_and_10_times_the_rows(
    team: Team, endpoint: str, viewer: str, expected: int
) -> None:
    goal = add_rows(team, 1)
    client = team.client(viewer)
    url = (
        reverse("api:goal-revisions", args=[goal.pk]) if endpoint == "goal-revisions" else list_url(endpoint)
    )

    once = count_queries(client, url)
    add_rows(team, 9)
    tenfold = count_queries(client, url)

    assert once == tenfold == expected
