"""New metric points to the pages watching a job, through `scheduler.live` (after commit).

State changes and log text are pushed by the scheduler itself (`scheduler.transitions`,
`scheduler.steps.read_logs`); `metrics.consumers` adds the progress figures to those.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction

from metrics.progress import job_progress
from scheduler import live
from scheduler.models import Job


def push_job(
    job: Job,
    *,
    points: dict[str, list[tuple[int, float]]] | None = None,
    refresh: bool = False,
    alert: dict[str, Any] | None = None,
) -> None:
    """Send a job's new points and progress to its watchers once the transaction commits. `refresh`:
    too many new points to send; the charts re-query the series instead."""
    fields: dict[str, Any] = {}
    if points:
        fields["points"] = {key: [[s, v] for s, v in values] for key, values in points.items()}
    if refresh:
        fields["refresh"] = True
    if alert:
        fields["alert"] = alert  # a loss spike or NaN (metrics.watch): the chart marks its step
    if not fields:
        return
    job_id, subteam_id = job.pk, job.subteam_id

    def send() -> None:
        progress = progress_of(job_id)
        if progress is not None:
            fields["progress"] = progress
        live.send(job_id, subteam_id, **fields)

    transaction.on_commit(send)


def progress_of(job_id: uuid.UUID | str) -> dict[str, Any] | None:
    """The job's progress as pushed to the pages (None before its first step is stored)."""
    job = Job.objects.filter(pk=job_id).select_related("cluster").first()
    progress = job_progress(job) if job is not None else None
    return progress.as_dict() if progress is not None else None
