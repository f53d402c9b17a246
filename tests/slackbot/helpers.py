"""Rows the Slack tests need: a cluster with an inventory, and jobs created directly."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.utils import timezone

from portal.models import Member, Subteam
from scheduler.models import Cluster, Job, JobLogChunk, Node


def make_cluster(name: str = "devcluster", *, nodes: int = 4, gpus_alloc: int = 0) -> Cluster:
    cluster = Cluster.objects.create(name=name, host="127.0.0.1", username="tanuki", work_dir="/srv/runs")
    for i in range(1, nodes + 1):
        Node.objects.create(
            cluster=cluster,
            name=f"node{i}",
            state="idle",
            partitions="gpu",
            gpus_total=8,
            gpus_alloc=gpus_alloc if i == 1 else 0,
        )
    return cluster


def make_job(
    owner: Member,
    subteam: Subteam,
    cluster: Cluster,
    *,
    name: str = "sft-run",
    state: str = Job.State.RUNNING,
    job_id: uuid.UUID | None = None,
    **fields: Any,
) -> Job:
    started = timezone.now() - dt.timedelta(minutes=12, seconds=4) if state != Job.State.SUBMITTING else None
    return Job.objects.create(
        id=job_id or uuid.uuid4(),
        name=name,
        owner=owner,
        subteam=subteam,
        cluster=cluster,
        command="python train.py",
        script="#!/bin/bash\n",
        partition="gpu",
        time_limit_minutes=60,
        gpus_per_node=8,
        state=state,
        slurm_job_id="" if state == Job.State.SUBMITTING else "4242",
        started_at=started,
        **fields,
    )


def add_log(job: Job, text: str, stream: str = "stdout") -> None:
    data = text.encode()
    JobLogChunk.objects.create(job=job, stream=stream, offset=0, data=data, size=len(data))
