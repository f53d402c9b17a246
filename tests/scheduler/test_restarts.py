"""A job Slurm requeues and runs again is counted as restarted: the first start is kept, the current
run's start is recorded (progress and ETA count from it), and the timeline says so.

The squeue lines are as the dev cluster's Slurm printed them around `scontrol requeue`: the job goes
back to PENDING with reason BeginTime (Slurm holds a requeued batch job back for about two minutes, so
a test on the live cluster would wait that long for the second start)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from scheduler import slurm
from scheduler.models import Job, JobEvent
from scheduler.tracking import TRACKED_FIELDS, _apply_queue_entry
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster, submit


def entry(state: str, start: dt.datetime | None = None, reason: str = "") -> slurm.QueueEntry:
    start_text = str(int(start.timestamp())) if start else "N/A"
    return slurm.QueueEntry(
        "42", state, reason, "node1" if state == "RUNNING" else "", start_text, "", "n", "c"
    )


def test_running_again_after_a_requeue_counts_a_restart(team: Team) -> None:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    job = submit(team, cluster)
    Job.objects.filter(pk=job.pk).update(state=Job.State.PENDING, slurm_job_id="42")

    def tracked() -> Job:
        return Job.objects.only(*TRACKED_FIELDS).get(pk=job.pk)

    first = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=30)
    assert _apply_queue_entry(tracked(), entry("RUNNING", first), cluster)
    job.refresh_from_db()
    assert (job.started_at, job.running_since, job.restarts) == (first, first, 0)
    requeued_until = timezone.now().replace(microsecond=0) + dt.timedelta(minutes=2)
    assert _apply_queue_entry(tracked(), entry("PENDING", requeued_until, reason="BeginTime"), cluster)
    again = first + dt.timedelta(minutes=20)
    assert _apply_queue_entry(tracked(), entry("RUNNING", again), cluster)
    job.refresh_from_db()
    assert (job.state, job.started_at, job.running_since, job.restarts) == (
        Job.State.RUNNING,
        first,
        again,
        1,
    )
    event = job.events.order_by("-at", "-id").first()
    assert event is not None and (event.kind, event.message) == (JobEvent.Kind.RESTARTED, "restart 1")
    page = team.client("member").get(f"/jobs/{job.pk}/").content.decode()
    assert "Restarted after a requeue" in page


def test_the_last_checkpoint_the_log_announces_is_shown(team: Team) -> None:
    from scheduler.steps import _last_checkpoint

    assert (
        _last_checkpoint(
            "checkpoint saved: step 200 out/checkpoint-200\nloss 1.2\ncheckpoint saved: step 400 out/checkpoint-400\n"
        )
        == 400
    )
    assert _last_checkpoint("[INFO] Saving model checkpoint to /runs/x/out/checkpoint-6000\n") == 6000
    assert _last_checkpoint("step 6000 done\n") is None
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    job = submit(team, cluster)
    at = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, restarts=2, running_since=at, last_checkpoint_step=400, last_checkpoint_at=at
    )
    page = team.client("member").get(f"/jobs/{job.pk}/").content.decode()
    assert f"step 400, {timezone.localtime(at):%Y-%m-%d %H:%M}" in page and '<dd id="restarts">2' in page
