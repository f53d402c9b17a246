"""The draft is made from the week's data; regenerating keeps the lead's text; publishing freezes the data."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from portal.models import Task
from reports import data, services, weeks
from reports.models import ReportEvent, WeeklyReport
from scheduler.models import Job
from tests.personas import Team
from tests.reports.conftest import Week, at, make_job

pytestmark = pytest.mark.django_db


def test_the_draft_holds_the_weeks_tasks_goal_changes_jobs_bookings_and_scores(
    team: Team, sft_week: Week
) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    week = report.data

    assert [t["title"] for t in week["tasks_done"]] == ["Compare LoRA ranks"]
    assert week["tasks_done"][0]["learnings"] == "Rank 16 was enough; rank 64 overfit the 100k set."
    assert week["tasks_done"][0]["assignees"] == ["Member"]
    assert [t["title"] for t in week["tasks_blocked"]] == ["Wait for the 100k set"]
    assert week["tasks_blocked"][0]["description"] == "The data team's export is stuck."

    (change,) = week["goal_changes"]
    assert change["goal"] == "MT-Bench 7.5"
    assert change["reason"] == "The loss spiked at 60% of the run"
    assert change["changes"] == [["status", "on_track", "at_risk"]]
    assert change["author"] == "Lead"
    assert [g["title"] for g in week["goals_flagged"]] == ["MT-Bench 7.5"]

    jobs = week["jobs"]
    assert jobs["count"] == 3  # the other subteam's job is not ours
    assert jobs["gpu_hours"] == 24 + 12 + 32  # the job that began on Sunday counts its half inside the week
    assert dict(jobs["states"]) == {"completed": 2, "failed": 1}
    assert [j["name"] for j in jobs["top"]] == ["pretrain-tail", "sft-lora-r16", "dpo-beta"]

    bookings = week["bookings"]
    assert bookings["count"] == 1  # only asked for: not booked
    assert bookings["gpu_hours"] == 96  # 8 GPUs × 12 h
    assert bookings["used_inside"] == 24
    assert bookings["items"][0]["used"] == 24

    assert [(s["model"], s["average"], s["new_best"]) for s in week["scores"]] == [
        ("sft-v2-lora16", 7.2, True),
        ("sft-v2-lora64", 6.5, False),
    ]
    assert week["scores"][0]["previous_best"] == 6.9
    assert week["health"] == {
        "overdue_milestones": 0,
        "overdue_goals": 0,
        "goals_at_risk": 1,
        "blocked_tasks": 1,
    }
    totals = data.totals(week)
    assert (totals.tasks_done, totals.blocked, totals.gpu_hours_used, totals.gpu_hours_booked) == (
        1,
        1,
        68,
        96,
    )


def test_the_week_is_monday_to_sunday_in_the_portals_time_zone(settings: object) -> None:
    start, end = weeks.bounds(dt.date(2026, 6, 1))
    assert start.isoformat() == "2026-06-01T00:00:00+09:00"
    assert end - start == dt.timedelta(days=7)
    assert weeks.parse("2026-06-04") == dt.date(2026, 6, 1)
    assert weeks.parse("2026-W23") == dt.date(2026, 6, 1)
    assert weeks.parse("last", today=dt.date(2026, 6, 4)) == dt.date(2026, 5, 25)
    assert weeks.parse("先週", today=dt.date(2026, 6, 4)) == dt.date(2026, 5, 25)
    assert weeks.parse("２０２６－０６－０１") == dt.date(2026, 6, 1)
    assert weeks.parse("sft") is None


def test_regenerating_keeps_the_leads_text_and_reads_the_data_again(team: Team, sft_week: Week) -> None:
    lead = team.member("lead")
    report = services.draft(team.sft, sft_week.week, lead)
    report = services.edit(lead, report, body="We tried LoRA.", issues="Need 16 more GPUs", revision=0)
    Task.objects.create(subteam=team.sft, title="Another wall", status=Task.Status.BLOCKED)

    again = services.draft(team.sft, sft_week.week, lead)

    assert again.pk == report.pk
    assert (again.body, again.issues, again.revision) == ("We tried LoRA.", "Need 16 more GPUs", 1)
    assert [t["title"] for t in again.data["tasks_blocked"]] == ["Wait for the 100k set", "Another wall"]
    kinds = list(ReportEvent.objects.filter(report=report).values_list("kind", flat=True))
    assert kinds == ["created", "edited", "regenerated"]


def test_an_edit_from_a_stale_form_is_refused_and_changes_nothing(team: Team, sft_week: Week) -> None:
    lead = team.member("lead")
    report = services.draft(team.sft, sft_week.week, lead)
    services.edit(lead, report, body="first", issues="", revision=0)
    with pytest.raises(services.ServiceError):
        services.edit(team.member("admin"), report, body="second", issues="", revision=0)
    report.refresh_from_db()
    assert (report.body, report.revision) == ("first", 1)
    assert [e.body for e in report.events.filter(kind="edited")] == ["first"]  # the history keeps the text


def test_publishing_freezes_the_data_once(team: Team, sft_week: Week) -> None:
    lead = team.member("lead")
    report = services.draft(team.sft, sft_week.week, lead)
    assert services.publish(lead, report) is True
    assert report.state == WeeklyReport.State.PUBLISHED
    assert report.published_by == lead and report.published_at is not None
    snapshot = report.data

    # Later changes do not rewrite what was true that week.
    Task.objects.filter(pk=sft_week.blocked.pk).update(status=Task.Status.DONE, updated_at=timezone.now())
    make_job(team, sft_week.cluster, "late-run", at(sft_week.week, 5, 1), 2, state=Job.State.COMPLETED)
    assert services.draft(team.sft, sft_week.week, lead).data == snapshot
    assert services.publish(lead, report) is False
    report.refresh_from_db()
    assert report.data == snapshot
    assert report.events.filter(kind="published").count() == 1


def test_a_week_that_has_not_begun_has_no_report(team: Team) -> None:
    with pytest.raises(services.ServiceError):
        services.draft(team.sft, weeks.this_week() + dt.timedelta(days=7), team.member("lead"))
    assert not WeeklyReport.objects.exists()


def test_the_agenda_puts_the_subteam_in_trouble_first_with_its_issues(
    team: Team, sft_week: Week, last_week: dt.date
) -> None:
    from reports.agenda import agenda

    report = services.draft(team.sft, last_week, team.member("lead"))
    services.edit(
        team.member("lead"), report, body="", issues="We need a decision on the 100k set", revision=0
    )
    Task.objects.create(subteam=team.pretrain, title="pretrain stuck", status=Task.Status.BLOCKED)

    rows = agenda(last_week)

    assert [r.subteam.slug for r in rows if r.has_items] == ["sft", "pretrain"]  # at risk, then one blocked
    sft = rows[0]
    assert sft.level.css == "risk" and not sft.from_snapshot
    assert sft.issues == "We need a decision on the 100k set"
    assert [g["title"] for g in sft.goals] == ["MT-Bench 7.5"]
    assert [t["title"] for t in sft.blocked] == ["Wait for the 100k set"]


def test_the_agenda_reads_a_published_report_from_its_snapshot(team: Team, sft_week: Week) -> None:
    from reports.agenda import agenda

    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.publish(team.member("lead"), report)
    Task.objects.filter(pk=sft_week.blocked.pk).update(status=Task.Status.DONE)

    sft = next(r for r in agenda(sft_week.week) if r.subteam == team.sft)

    assert sft.from_snapshot
    assert [t["title"] for t in sft.blocked] == ["Wait for the 100k set"]  # as it was when published
