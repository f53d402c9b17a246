"""Tracking compares a few columns of every live job with squeue and reads in full only the jobs that
changed: the compared row, the full read and `differs` must agree with what the job is."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from scheduler import slurm
from scheduler.models import Job
from scheduler.steps import live_rows
from scheduler.tracking import TRACKED_FIELDS, differs, tracked_jobs
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster, submit


def entry(
    state: str, reason: str = "", nodes: str = "", start: dt.datetime | None = None
) -> slurm.QueueEntry:
    """A squeue line as `parse_squeue` reads it (times as epoch seconds)."""
    start_text = str(int(start.timestamp())) if start else "N/A"
    return slurm.QueueEntry("42", state, reason, nodes, start_text, "", "tanuki-x", "tanuki:x")


def test_a_live_job_is_compared_by_a_few_columns_and_read_in_full_only_when_it_changed(
    team: Team, django_assert_num_queries: Any
) -> None:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    job = submit(team, cluster, name="tracked")
    waiting = submit(team, cluster, name="waiting")
    started = (timezone.now() - dt.timedelta(minutes=3)).replace(microsecond=0)
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, slurm_job_id="42", node_list="node2", started_at=started, gpus=8
    )
    Job.objects.filter(pk=waiting.pk).update(state=Job.State.PENDING, slurm_job_id="43", reason="Priority")
    submit(team, cluster, name="not-yet-sent")  # no Slurm id: not tracked

    with django_assert_num_queries(1):
        rows = sorted(live_rows(cluster), key=lambda row: row[1])
    user = job.cluster_user
    assert user and {row[0] for row in rows} == {user}
    assert rows == [
        (user, "", "submitting", "", "", False, None),  # squeue lists its user's jobs; tracking skips it
        (user, "42", "running", "", "node2", True, None),
        (user, "43", "pending", "Priority", "", False, None),
    ]
    _, running, pending = rows

    # The full read has every column tracking writes from, with no further query.
    with django_assert_num_queries(1):
        (made,) = tracked_jobs(cluster).filter(slurm_job_id__in=["42"]).only(*TRACKED_FIELDS)
    stored = Job.objects.get(pk=job.pk)
    with django_assert_num_queries(0):
        for name in ("id", *TRACKED_FIELDS):
            assert getattr(made, name) == getattr(stored, name), name

    # Unchanged: the same state (COMPLETING is still running), reason, nodes, a start already recorded.
    assert not differs(entry("RUNNING", nodes="node2", start=started), running)
    assert not differs(entry("COMPLETING", nodes="node2", start=started), running)
    assert not differs(entry("RUNNING", start=started), running)  # no node list said: nothing new
    assert not differs(entry("PENDING", "Priority"), pending)  # still no start estimate
    # Slurm's start estimate for a pending job: news when it appears, goes, or moves by over a minute.
    soon = started + dt.timedelta(hours=1)
    assert differs(entry("PENDING", "Priority", start=soon), pending)
    estimated = (*pending[:6], soon)
    assert not differs(entry("PENDING", "Priority", start=soon + dt.timedelta(seconds=40)), estimated)
    assert differs(entry("PENDING", "Priority", start=soon + dt.timedelta(minutes=5)), estimated)
    assert differs(entry("PENDING", "Priority"), estimated)
    # Changed: another state (an end state too), other nodes, a new pending reason, a first start.
    assert differs(entry("PENDING", "Priority"), running)
    assert differs(entry("COMPLETED", nodes="node2", start=started), running)
    assert differs(entry("RUNNING", nodes="node3", start=started), running)
    assert differs(entry("PENDING", "Resources"), pending)
    assert differs(entry("RUNNING", nodes="node1", start=started), pending)
    assert differs(entry("RUNNING", start=started), pending)
    # Running, yet with a pending reason left over: cleared.
    assert differs(
        entry("RUNNING", nodes="node2", start=started),
        (user, "42", "running", "Priority", "node2", True, None),
    )
    # Running without a recorded start: only once squeue gives one.
    assert differs(
        entry("RUNNING", nodes="node2", start=started), (user, "42", "running", "", "node2", False, None)
    )
    assert not differs(entry("RUNNING", nodes="node2"), (user, "42", "running", "", "node2", False, None))
