"""Tracking reads live jobs as tuples and makes a Job only of one that changed: the two must agree."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from scheduler import slurm
from scheduler.models import Job
from scheduler.steps import TRACKED_FIELDS, TrackedRow
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster, submit


def test_a_tracked_row_becomes_the_same_job_and_sees_what_squeue_changes(team: Team) -> None:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    job = submit(team, cluster, name="tracked")
    started = timezone.now() - dt.timedelta(minutes=3)
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.RUNNING, slurm_job_id="42", node_list="node2", started_at=started, gpus=8
    )
    row = TrackedRow(*Job.objects.filter(pk=job.pk).values_list(*TRACKED_FIELDS).get())
    made = row.job()
    for name in TRACKED_FIELDS:
        assert getattr(made, name) == getattr(Job.objects.get(pk=job.pk), name), name
    same = slurm.QueueEntry("42", "RUNNING", "", "node2", started, None, "n", "c")
    assert not row.differs_from(same)
    assert row.differs_from(slurm.QueueEntry("42", "COMPLETING", "", "node3", started, None, "n", "c"))
    assert row.differs_from(slurm.QueueEntry("42", "PENDING", "Priority", "", None, None, "n", "c"))
