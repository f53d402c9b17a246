"""The slash command's subcommands, through the signed endpoint, as the personas."""

from __future__ import annotations

import uuid

import pytest

from portal.models import Member, Membership, Task
from scheduler.models import Job, JobEvent
from tests.personas import Team
from tests.slackbot.conftest import Slash
from tests.slackbot.helpers import add_log, make_cluster, make_job

pytestmark = pytest.mark.django_db


def test_help_lists_the_subcommands(linked: Team, slash: Slash) -> None:
    text = slash("help", locale="en-US")
    for name in ("gpus", "reserve", "jobs", "job <id>", "cancel <id>", "task", "help"):
        assert f"`{name}" in text


def test_an_empty_command_shows_help(linked: Team, slash: Slash) -> None:
    assert "`jobs`" in slash("", locale="en-US")


def test_an_unknown_subcommand_is_named(linked: Team, slash: Slash) -> None:
    text = slash("launch <rockets>", locale="en-US")
    assert text.startswith("Unknown command `launch`.")
    assert "`jobs`" in text


def test_an_unknown_user_is_told_how_to_link_their_account(linked: Team, slash: Slash) -> None:
    text = slash("task Sneaky", user_id="U0STRANGER", locale="en-US")
    assert "U0STRANGER" in text and "Slack user ID" in text
    assert "https://portal.example.org/members/" in text
    assert not Task.objects.exists()


def test_an_inactive_account_counts_as_unknown(linked: Team, slash: Slash) -> None:
    user = linked.users["member"]
    user.is_active = False
    user.save()
    assert "is not linked" in slash("task Nope", locale="en-US")
    assert not Task.objects.exists()


# --- language -----------------------------------------------------------------------------------------------


# The Slack app's own strings are translated with the rest of the catalog; the scheduler's state names
# already are, so a job's state shows which language the answer was given in.


def test_it_answers_in_japanese_by_default(linked: Team, slash: Slash) -> None:
    make_job(linked.member("member"), linked.sft, make_cluster(), name="sft-run")
    assert "sft-run — 実行中 (" in slash("jobs")


def test_it_answers_in_the_slack_locale(linked: Team, slash: Slash) -> None:
    make_job(linked.member("member"), linked.sft, make_cluster(), name="sft-run")
    assert "sft-run — Running (" in slash("jobs", locale="en-US")
    assert "sft-run — 実行中 (" in slash("jobs", locale="ja-JP")


def test_the_members_own_language_wins_over_slacks_locale(linked: Team, slash: Slash) -> None:
    make_job(linked.member("member"), linked.sft, make_cluster(), name="sft-run")
    Member.objects.filter(pk=linked.member("member").pk).update(language="en")
    assert "sft-run — Running (" in slash("jobs")
    assert "sft-run — Running (" in slash("jobs", locale="ja-JP")


def test_an_unsupported_locale_falls_back_to_japanese(linked: Team, slash: Slash) -> None:
    make_job(linked.member("member"), linked.sft, make_cluster(), name="sft-run")
    assert "sft-run — 実行中 (" in slash("jobs", locale="fr-FR")


# --- jobs ---------------------------------------------------------------------------------------------------


def test_jobs_lists_my_live_jobs_only(linked: Team, slash: Slash) -> None:
    cluster = make_cluster()
    mine = make_job(linked.member("member"), linked.sft, cluster, name="my-sft")
    make_job(linked.member("member"), linked.sft, cluster, name="my-old", state=Job.State.COMPLETED)
    make_job(linked.member("lead"), linked.sft, cluster, name="leads-sft")
    text = slash("jobs", locale="en-US")
    assert f"`{str(mine.id)[:8]}` my-sft — Running (devcluster, 0:12:0" in text
    assert "my-old" not in text and "leads-sft" not in text


def test_job_shows_state_runtime_and_last_log_lines(linked: Team, slash: Slash) -> None:
    cluster = make_cluster()
    job = make_job(
        linked.member("lead"), linked.sft, cluster, name="dpo <beta>", state=Job.State.FAILED, exit_code=3
    )
    add_log(job, "".join(f"step {i}\n" for i in range(1, 31)))
    text = slash(f"job {str(job.id)[:8]}", locale="en-US")
    assert f"*dpo &lt;beta&gt;* `{job.id}`" in text
    assert "State: Failed" in text and "Exit code: 3" in text and "Run time: 0:12:0" in text
    assert f"https://portal.example.org/jobs/{job.id}/" in text
    assert "step 21\n" in text and "step 30" in text and "step 20\n" not in text


def test_job_without_output_says_so(linked: Team, slash: Slash) -> None:
    job = make_job(linked.member("member"), linked.sft, make_cluster(), state=Job.State.PENDING)
    assert "(no output yet)" in slash(f"job {job.id}", locale="en-US")


@pytest.mark.parametrize("ref", ["", "abc", "1234567", "not-a-uuid-at-all", "12345678 extra"])
def test_job_needs_a_usable_id(linked: Team, slash: Slash, ref: str) -> None:
    make_job(linked.member("member"), linked.sft, make_cluster())
    text = slash(f"job {ref}", locale="en-US")
    assert text.startswith(("Usage: `job <id>`", "Give a job ID"))


def test_job_with_an_unknown_id(linked: Team, slash: Slash) -> None:
    make_job(
        linked.member("member"),
        linked.sft,
        make_cluster(),
        job_id=uuid.UUID("11111111-2222-3333-4444-555555555555"),
    )
    assert slash("job 99999999", locale="en-US") == "No job with ID 99999999."


def test_a_prefix_matches_across_the_hyphens(linked: Team, slash: Slash) -> None:
    job_id = uuid.UUID("11111111-2222-3333-4444-555555555555")
    make_job(linked.member("member"), linked.sft, make_cluster(), job_id=job_id, name="hyphens")
    assert "*hyphens*" in slash("job 11111111-22", locale="en-US")
    assert "*hyphens*" in slash("job 1111111122223", locale="en-US")


def test_an_ambiguous_prefix_asks_for_more(linked: Team, slash: Slash) -> None:
    cluster = make_cluster()
    make_job(
        linked.member("member"), linked.sft, cluster, job_id=uuid.UUID("abcdef01-0000-0000-0000-000000000001")
    )
    make_job(
        linked.member("member"), linked.sft, cluster, job_id=uuid.UUID("abcdef01-0000-0000-0000-000000000002")
    )
    assert "give more of the ID" in slash("job abcdef01", locale="en-US")


# --- cancel -------------------------------------------------------------------------------------------------


def test_cancel_my_running_job_asks_the_worker(linked: Team, slash: Slash) -> None:
    job = make_job(linked.member("member"), linked.sft, make_cluster(), name="mine")
    text = slash(f"cancel {str(job.id)[:8]}", locale="en-US")
    assert text.startswith("Cancel requested for mine")
    job.refresh_from_db()
    assert job.cancel_requested_at is not None and job.cancel_requested_by == linked.member("member")
    assert JobEvent.objects.filter(job=job, kind=JobEvent.Kind.CANCEL_REQUESTED).count() == 1


def test_cancel_a_job_not_yet_sent_cancels_it_at_once(linked: Team, slash: Slash) -> None:
    job = make_job(
        linked.member("member"), linked.sft, make_cluster(), name="queued", state=Job.State.SUBMITTING
    )
    assert slash(f"cancel {job.id}", locale="en-US") == "Cancelled queued."
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED


def test_cancel_refuses_someone_elses_job(linked: Team, slash: Slash) -> None:
    job = make_job(linked.member("lead"), linked.sft, make_cluster(), name="leads")
    text = slash(f"cancel {job.id}", locale="en-US")
    assert text.startswith("You may not cancel leads")
    job.refresh_from_db()
    assert job.cancel_requested_at is None and job.state == Job.State.RUNNING
    assert not JobEvent.objects.filter(job=job).exists()


def test_cancel_refuses_another_subteams_member(linked: Team, slash: Slash) -> None:
    job = make_job(linked.member("member"), linked.sft, make_cluster(), name="sft-job")
    assert slash(f"cancel {job.id}", user_id="U0OTHER", locale="en-US").startswith("You may not cancel")
    job.refresh_from_db()
    assert job.cancel_requested_at is None


def test_a_lead_cancels_their_subteams_job(linked: Team, slash: Slash) -> None:
    job = make_job(linked.member("member"), linked.sft, make_cluster(), name="members")
    assert slash(f"cancel {job.id}", user_id="U0LEAD", locale="en-US").startswith("Cancel requested")
    job.refresh_from_db()
    assert job.cancel_requested_by == linked.member("lead")


def test_cancel_an_ended_job_changes_nothing(linked: Team, slash: Slash) -> None:
    job = make_job(
        linked.member("member"), linked.sft, make_cluster(), name="done", state=Job.State.COMPLETED
    )
    assert slash(f"cancel {job.id}", locale="en-US") == "done has already ended (Completed)."
    job.refresh_from_db()
    assert job.cancel_requested_at is None


def test_cancel_needs_an_id(linked: Team, slash: Slash) -> None:
    assert slash("cancel", locale="en-US") == "Usage: `cancel <id>`"


# --- task ---------------------------------------------------------------------------------------------------


def test_task_goes_to_my_only_subteam(linked: Team, slash: Slash) -> None:
    text = slash("task Clean the instruction data", locale="en-US")
    task = Task.objects.get()
    assert (task.subteam, task.title, task.created_by) == (
        linked.sft,
        "Clean the instruction data",
        linked.member("member"),
    )
    assert text.startswith("Added task “Clean the instruction data” to Fine-tuning.")
    assert f"https://portal.example.org{task.get_absolute_url()}" in text


def test_task_with_a_subteam_slug(linked: Team, slash: Slash) -> None:
    slash("task sft Tune the DPO beta", locale="en-US")
    assert Task.objects.get().subteam == linked.sft


def test_task_asks_for_the_subteam_when_i_am_in_several(linked: Team, slash: Slash) -> None:
    Membership.objects.create(member=linked.member("member"), subteam=linked.pretrain)
    text = slash("task Something", locale="en-US")
    assert "several subteams (pretrain, sft)" in text
    assert not Task.objects.exists()
    slash("task pretrain Something", locale="en-US")
    assert Task.objects.get().subteam == linked.pretrain


def test_task_refuses_another_subteam(linked: Team, slash: Slash) -> None:
    assert slash("task pretrain Not mine", locale="en-US") == "You may not add tasks to Pretraining data."
    assert not Task.objects.exists()


def test_an_admin_adds_tasks_anywhere(linked: Team, slash: Slash) -> None:
    slash("task pretrain Plan the third batch", user_id="U0ADMIN", locale="en-US")
    assert Task.objects.get().subteam == linked.pretrain


@pytest.mark.parametrize("text", ["task", "task sft", "task   "])
def test_task_needs_a_title(linked: Team, slash: Slash, text: str) -> None:
    assert slash(text, locale="en-US") == "Usage: `task [subteam] <title>`"
    assert not Task.objects.exists()


def test_task_title_too_long_is_refused(linked: Team, slash: Slash) -> None:
    text = slash("task " + "x" * 201, locale="en-US")
    assert text.startswith("The task was not added: title:")
    assert not Task.objects.exists()


def test_task_in_japanese(linked: Team, slash: Slash) -> None:
    text = slash("task 評価データを整える")
    assert Task.objects.get().title == "評価データを整える"
    assert "評価データを整える" in text


def test_an_unexpected_error_is_answered_not_raised(
    linked: Team, slash: Slash, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from slackbot import commands

    def broken(member: object, args: list[str]) -> commands.Reply:
        raise RuntimeError("database on fire")

    monkeypatch.setitem(commands.HANDLERS, "jobs", broken)
    assert slash("jobs", locale="en-US") == "Something went wrong; the portal's log has the details."
    assert "database on fire" in caplog.text


def test_jobs_uses_the_same_queries_however_many_jobs(linked: Team, slash: Slash) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    cluster = make_cluster()
    make_job(linked.member("member"), linked.sft, cluster, name="first")
    with CaptureQueriesContext(connection) as one:
        slash("jobs", locale="en-US")
    for i in range(10):
        make_job(linked.member("member"), linked.sft, cluster, name=f"more-{i}")
    with CaptureQueriesContext(connection) as eleven:
        assert "more-9" in slash("jobs", locale="en-US")
    assert len(eleven.captured_queries) == len(one.captured_queries)
