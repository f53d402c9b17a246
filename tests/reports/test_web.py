"""The report pages through their URLs, as each persona: the lead's way from draft to published, the
refusals, escaping, the Japanese UI, and the query counts of every page at 1× and 10× the data."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evals.models import EvalResult
from lending.models import Reservation
from portal import services as portal_services
from portal.models import Goal, GoalRevision, Member, Subteam, Task
from reports import services, weeks
from reports.models import ReportEvent, WeeklyReport
from tests.personas import Team, make_user
from tests.reports.conftest import Week, at, make_job

pytestmark = pytest.mark.django_db


def url(slug: str, week: dt.date, action: str = "") -> str:
    return f"/reports/teams/{slug}/{week.isoformat()}/" + (f"{action}/" if action else "")


def test_a_lead_starts_edits_and_publishes_the_weeks_report(team: Team, sft_week: Week) -> None:
    client = team.client("lead")
    page = client.get(url("sft", sft_week.week)).content.decode()
    assert "Not started" in page and "Compare LoRA ranks" in page  # the week so far, nothing written
    assert not WeeklyReport.objects.exists()

    response = client.post(url("sft", sft_week.week, "draft"))
    assert response.status_code == 302 and response["Location"] == url("sft", sft_week.week)
    report = WeeklyReport.objects.get()
    assert report.state == "draft" and report.author == team.member("lead")

    form = client.get(url("sft", sft_week.week, "edit"))
    assert form.status_code == 200
    response = client.post(
        url("sft", sft_week.week, "edit"),
        {"body": "**LoRA** rank 16 it is.", "issues": "- 100k set is late", "revision": "0"},
    )
    assert response.status_code == 302
    report.refresh_from_db()
    assert (report.body, report.issues, report.updated_by) == (
        "**LoRA** rank 16 it is.",
        "- 100k set is late",
        team.member("lead"),
    )
    page = client.get(url("sft", sft_week.week)).content.decode()
    assert "<strong>LoRA</strong> rank 16 it is." in page
    assert "<li>100k set is late</li>" in page
    assert "Rank 16 was enough" in page and "The loss spiked at 60% of the run" in page
    assert "sft-v2-lora16" in page and "new best" in page

    response = client.post(url("sft", sft_week.week, "publish"), follow=True)
    assert "Published. It is posted to #sft shortly." in response.content.decode()
    report.refresh_from_db()
    assert report.state == "published" and report.published_by == team.member("lead")
    client.post(url("sft", sft_week.week, "publish"))
    assert report.events.filter(kind="published").count() == 1


def test_the_lead_of_another_subteam_is_refused_and_nothing_changes(
    team: Team, sft_week: Week, other_lead: Member
) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    client = team.client("lead")
    client.force_login(other_lead.user)
    for action, payload in [
        ("draft", {}),
        ("edit", {"body": "hijacked", "issues": "", "revision": "0"}),
        ("publish", {}),
    ]:
        assert client.post(url("sft", sft_week.week, action), payload).status_code == 403, action
    assert client.get(url("sft", sft_week.week, "edit")).status_code == 403
    report.refresh_from_db()
    assert (report.state, report.body, report.revision) == ("draft", "", 0)
    assert list(report.events.values_list("kind", flat=True)) == ["created"]
    assert not ReportEvent.objects.filter(kind="published").exists()
    # Their own subteam's report is theirs to write.
    assert client.post(url("pretrain", sft_week.week, "draft")).status_code == 302


@pytest.mark.parametrize("role", ["member", "other"])
def test_members_read_but_do_not_write(team: Team, sft_week: Week, role: str) -> None:
    services.draft(team.sft, sft_week.week, team.member("lead"))
    client = team.client(role)
    page = client.get(url("sft", sft_week.week))
    assert page.status_code == 200
    assert 'id="publish"' not in page.content.decode()
    assert client.post(url("sft", sft_week.week, "publish")).status_code == 403
    assert client.post(url("sft", sft_week.week, "draft")).status_code == 403
    assert WeeklyReport.objects.get().state == "draft"


def test_admins_write_any_subteams_report(team: Team, sft_week: Week) -> None:
    response = team.client("admin").post(url("sft", sft_week.week, "draft"))
    assert response.status_code == 302
    assert WeeklyReport.objects.get().author == team.member("admin")


def test_anonymous_visitors_are_sent_to_sign_in(team: Team, last_week: dt.date) -> None:
    client = team.client("anon")
    for path in ["/reports/", "/reports/agenda/", "/reports/teams/sft/", url("sft", last_week)]:
        response = client.get(path)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], path
    assert client.post(url("sft", last_week, "draft")).status_code == 302
    assert not WeeklyReport.objects.exists()


def test_a_week_that_has_not_begun_is_not_found(team: Team) -> None:
    later = weeks.this_week() + dt.timedelta(days=7)
    client = team.client("lead")
    assert client.get(url("sft", later)).status_code == 404
    assert client.post(url("sft", later, "draft")).status_code == 404
    assert client.get(f"/reports/agenda/{later.isoformat()}/").status_code == 404


def test_a_stale_edit_keeps_both_texts_on_the_page(team: Team, sft_week: Week) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.edit(team.member("admin"), report, body="theirs", issues="", revision=0)
    response = team.client("lead").post(
        url("sft", sft_week.week, "edit"), {"body": "mine", "issues": "", "revision": "0"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "Someone saved this report after you opened it" in page
    assert "mine</textarea>" in page and "theirs" in page
    assert 'name="revision" value="1"' in page  # saving again now overwrites, knowingly
    report.refresh_from_db()
    assert report.body == "theirs"


def test_what_people_type_is_escaped_and_markdown_cannot_inject(team: Team, sft_week: Week) -> None:
    evil = "<script>alert(1)</script>"
    Task.objects.filter(pk=sft_week.done.pk).update(title=evil, learnings=evil)
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.edit(
        team.member("lead"),
        report,
        body=f"{evil}\n\n[click](javascript:alert(1)) <img src=x onerror=alert(1)>",
        issues=evil,
        revision=0,
    )
    for path in [url("sft", sft_week.week), url("sft", sft_week.week, "edit"), "/reports/agenda/"]:
        body = team.client("admin").get(path).content.decode()
        assert evil not in body, path
        assert 'href="javascript:' not in body and "<img src=x" not in body, path


def test_the_pages_speak_japanese(team: Team, sft_week: Week) -> None:
    services.draft(team.sft, sft_week.week, team.member("lead"))
    client = team.client("lead", language="ja")
    page = client.get(url("sft", sft_week.week)).content.decode()
    assert "週報" in page and "今週やり終えたこと" in page and "公開する" in page
    assert "週報" in client.get("/reports/").content.decode()
    assert "運営会議の議題" in client.get("/reports/agenda/").content.decode()


def test_the_archive_lists_published_reports_and_this_weeks_state(team: Team, sft_week: Week) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.publish(team.member("lead"), report)
    services.draft(team.pretrain, weeks.this_week(), team.member("admin"))
    page = team.client("member").get("/reports/").content.decode()
    assert f'id="report-{report.pk}"' in page
    assert 'data-subteam="pretrain"' in page
    mine = team.client("member").get("/reports/teams/sft/").content.decode()
    assert f'id="report-{report.pk}"' in mine
    assert 'href="/reports/"' in team.client("member").get("/").content.decode()  # the nav link


def test_the_archive_pages_by_weeks_and_links_older_ones(team: Team) -> None:
    monday = weeks.this_week()
    for n in (1, 2, 9):  # nothing published 3 to 8 weeks ago
        report = services.draft(team.sft, monday - dt.timedelta(days=7 * n), team.member("lead"))
        services.publish(team.member("lead"), report)
    client = team.client("member")
    page = client.get("/reports/").content.decode()
    assert page.count('<tr id="report-') == 2
    older = monday - dt.timedelta(days=7 * 8)  # the page after starts at the newest older report
    assert f'href="?before={older.isoformat()}"' in page
    second = client.get(f"/reports/?before={older.isoformat()}").content.decode()
    assert second.count('<tr id="report-') == 1 and 'href="?before=' not in second


# --- query counts ---------------------------------------------------------------------------------------------


def add_rows(team: Team, sft_week: Week, n: int, tag: str) -> None:
    """n more of everything the pages show: sft's tasks, goal changes, jobs, bookings and results in the
    week (for both weeks the pages show), and subteams with blocked tasks, goals at risk and reports."""
    for week in (sft_week.week, sft_week.week - dt.timedelta(days=7)):
        for i in range(n):
            done = Task.objects.create(subteam=team.sft, title=f"{tag} done {i}", status=Task.Status.DONE)
            done.assignees.set([team.member("member"), team.member("lead")])
            Task.objects.filter(pk=done.pk).update(updated_at=at(week, 2, 10))
            change = portal_services.update_goal(
                None, sft_week.goal, {"title": f"{tag} goal {week} {i}"}, reason=f"{tag} reason {i}"
            )
            assert change is not None
            GoalRevision.objects.filter(pk=change.pk).update(created_at=at(week, 2, 12))
            make_job(team, sft_week.cluster, f"{tag} job {i}", at(week, 1, 1 + i), 1)
            Reservation.objects.create(
                requester=team.member("lead"),
                subteam=team.sft,
                cluster=sft_week.cluster,
                gpus=8,
                start=at(week, 3, i),
                end=at(week, 3, i + 1),
                purpose=f"{tag} {i}",
                state=Reservation.State.FINISHED,
            )
            EvalResult.objects.create(model_name=f"{tag} model {i}", average=5 + i / 10, subteam=team.sft)
            EvalResult.objects.filter(model_name=f"{tag} model {i}").update(created_at=at(week, 4, 1))
    for i in range(n):
        lead = make_user(f"{tag}lead{i}")
        extra = Subteam.objects.create(name=f"{tag} team {i}", slug=f"{tag}-team-{i}")
        stuck = Task.objects.create(subteam=extra, title=f"{tag} stuck {i}", status=Task.Status.BLOCKED)
        stuck.assignees.set([lead.member])
        Goal.objects.create(subteam=extra, title=f"{tag} goal {i}", status=Goal.Status.AT_RISK)
        report = services.draft(extra, sft_week.week, lead.member)
        services.edit(lead.member, report, body="text", issues=f"issue {i}", revision=0)
        if i % 2 == 0:
            services.publish(lead.member, report)


PAGES: list[Callable[[dt.date], str]] = [
    lambda w: url("sft", w),
    lambda w: url("sft", w - dt.timedelta(days=7)),  # no report: the live preview
    lambda w: "/reports/",
    lambda w: "/reports/teams/sft/",
    lambda w: f"/reports/agenda/{w.isoformat()}/",
]


@pytest.mark.parametrize("page", range(len(PAGES)))
def test_report_pages_run_the_same_number_of_queries_for_1x_and_10x_data(
    team: Team, sft_week: Week, page: int
) -> None:
    path = PAGES[page](sft_week.week)
    add_rows(team, sft_week, 1, "a")
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    client = team.client("admin")
    client.get(path)  # warm per-process caches
    with CaptureQueriesContext(connection) as one:
        assert client.get(path).status_code == 200
    add_rows(team, sft_week, 9, "b")
    services.draft(team.sft, sft_week.week, team.member("lead"))
    services.edit(team.member("lead"), report, body="more", issues="more", revision=0)
    with CaptureQueriesContext(connection) as ten:
        assert client.get(path).status_code == 200
    assert len(one) == len(ten), "\n".join(
        q["sql"][:160] for q in [*one.captured_queries, {"sql": "---"}, *ten.captured_queries]
    )
