"""Ingestion over the real dev cluster's SFTP: a run file that grows on the cluster is stored once, and a
cycle with nothing new costs one SFTP read and no remote command."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from metrics import ingest, wandb_file
from metrics.models import MetricCursor, MetricPoint
from scheduler.models import Cluster, Job
from scheduler.steps import CycleStats, Poll
from tests.metrics.conftest import MakeJob
from tests.metrics.test_ingest import expected_points
from tests.scheduler.conftest import Remote, cluster, devcluster_info, remote  # noqa: F401


@pytest.fixture
def cluster_job(make_job: MakeJob, cluster: Cluster, remote: Remote) -> Iterator[Job]:  # noqa: F811
    job = make_job(cluster=cluster)
    yield job
    remote.run("rm", "-rf", "--", job.run_dir)


def test_a_growing_run_file_on_the_cluster_is_stored_once(
    cluster_job: Job,
    cluster: Cluster,  # noqa: F811
    remote: Remote,  # noqa: F811
    run_file: bytes,
) -> None:
    job = cluster_job
    conn = remote.conn
    path = f"{job.run_dir}/wandb/offline-run-20240621_101500-{job.id}/run-{job.id}.wandb"
    assert ingest.ingest_job(job, conn) == 0  # no run yet: one listing, nothing stored
    half = wandb_file.parse(run_file[: len(run_file) // 2]).offset + 3  # a record cut in the middle
    conn.write_file(path, run_file[:half])
    commands = conn.commands_run

    poll = Poll(cluster, conn, "test", CycleStats(cluster.name))
    ingest.ingest_cluster(poll)
    first = MetricPoint.objects.filter(job=job).count()
    conn.write_file(path, run_file)
    ingest.ingest_cluster(poll)
    ops = conn.sftp_ops
    ingest.ingest_cluster(poll)

    assert 0 < first < expected_points()
    assert MetricPoint.objects.filter(job=job).count() == expected_points()
    cursor = MetricCursor.objects.get(job=job)
    assert (cursor.path, cursor.offset) == (path, len(run_file))
    assert conn.sftp_ops - ops == 1
    assert conn.commands_run == commands  # SFTP only: no remote command
