"""/api/v1/reports/: read as anyone signed in; start, edit and publish as the subteam's lead or an admin."""

from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.test import APIClient

from portal.models import Member
from reports import services
from reports.models import WeeklyReport
from tests.personas import Team
from tests.reports.conftest import Week

pytestmark = pytest.mark.django_db


def api(team: Team, role: str) -> APIClient:
    client = APIClient()
    if role != "anon":
        client.force_authenticate(team.users[role])
    return client


def as_member(member: Member) -> APIClient:
    client = APIClient()
    client.force_authenticate(member.user)
    return client


def test_a_lead_drafts_edits_and_publishes_through_the_api(team: Team, sft_week: Week) -> None:
    client = api(team, "lead")
    week = sft_week.week.isoformat()
    response = client.post("/api/v1/reports/", {"subteam": "sft", "week": week}, format="json")
    assert response.status_code == 201, response.content
    report = response.json()
    assert (report["subteam"], report["week"], report["state"], report["author"]) == (
        "sft",
        week,
        "draft",
        "lead",
    )
    assert [t["title"] for t in report["data"]["tasks_done"]] == ["Compare LoRA ranks"]
    assert report["web_url"] == f"/reports/teams/sft/{week}/"

    again = client.post("/api/v1/reports/", {"subteam": "sft", "week": week}, format="json")
    assert again.status_code == 200 and again.json()["id"] == report["id"]

    edited = client.patch(
        f"/api/v1/reports/{report['id']}/", {"issues": "Need 16 GPUs", "revision": 0}, format="json"
    )
    assert edited.status_code == 200, edited.content
    assert (edited.json()["issues"], edited.json()["revision"]) == ("Need 16 GPUs", 1)
    stale = client.patch(f"/api/v1/reports/{report['id']}/", {"body": "late", "revision": 0}, format="json")
    assert stale.status_code == 409

    published = client.post(f"/api/v1/reports/{report['id']}/publish/")
    assert published.status_code == 200
    assert (published.json()["state"], published.json()["published_by"]) == ("published", "lead")
    assert client.post(f"/api/v1/reports/{report['id']}/publish/").status_code == 200  # idempotent
    assert WeeklyReport.objects.get().events.filter(kind="published").count() == 1


def test_others_read_but_are_refused_writes_and_nothing_changes(
    team: Team, sft_week: Week, other_lead: Member
) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    for client in (api(team, "member"), api(team, "other"), as_member(other_lead)):
        assert client.get(f"/api/v1/reports/{report.pk}/").status_code == 200
        assert client.post("/api/v1/reports/", {"subteam": "sft"}, format="json").status_code == 403
        patch = client.patch(f"/api/v1/reports/{report.pk}/", {"body": "x", "revision": 0}, format="json")
        assert patch.status_code == 403
        assert client.post(f"/api/v1/reports/{report.pk}/publish/").status_code == 403
    report.refresh_from_db()
    assert (report.state, report.body, report.revision) == ("draft", "", 0)
    assert api(team, "anon").get("/api/v1/reports/").status_code in (401, 403)
    assert api(team, "lead").put(f"/api/v1/reports/{report.pk}/", {}, format="json").status_code == 405


def test_the_list_filters_by_subteam_week_and_state(team: Team, sft_week: Week) -> None:
    sft = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.publish(team.member("lead"), sft)
    services.draft(team.pretrain, sft_week.week, team.member("admin"))
    client = api(team, "member")
    listed = client.get("/api/v1/reports/").json()
    assert listed["count"] == 2 and "data" not in listed["results"][0]
    day = (sft_week.week + dt.timedelta(days=3)).isoformat()  # any day names its week
    assert [
        r["subteam"] for r in client.get(f"/api/v1/reports/?state=published&week={day}").json()["results"]
    ] == ["sft"]
    assert client.get("/api/v1/reports/?subteam=pretrain").json()["count"] == 1
    assert client.get("/api/v1/reports/?subteam=nope").status_code == 400


def test_the_agenda_gives_every_subteam_with_something_to_discuss_worst_first(
    team: Team, sft_week: Week
) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.edit(team.member("lead"), report, body="", issues="Decide on the 100k set", revision=0)
    response = api(team, "member").get(f"/api/v1/reports/agenda/?week={sft_week.week.isoformat()}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["week"] == sft_week.week.isoformat()
    (sft,) = body["items"]
    assert (sft["subteam"], sft["level"], sft["report_state"], sft["issues"]) == (
        "sft",
        "risk",
        "draft",
        "Decide on the 100k set",
    )
    assert [t["title"] for t in sft["blocked_tasks"]] == ["Wait for the 100k set"]
    assert [g["title"] for g in sft["goals"]] == ["MT-Bench 7.5"]
    assert api(team, "member").get("/api/v1/reports/agenda/?week=2999-01-04").status_code == 400


def test_the_schema_describes_the_reports_endpoints(team: Team) -> None:
    paths = api(team, "member").get("/api/schema/", {"format": "json"}).json()["paths"]
    for path in ("/api/v1/reports/", "/api/v1/reports/{id}/", "/api/v1/reports/{id}/publish/"):
        assert path in paths
    assert "/api/v1/reports/agenda/" in paths
