"""Live updates to the job page and the subteam dashboard, through the channel layer.

Every message goes to the groups `job-<uuid>` and `subteam-<slug>` after the surrounding transaction
commits (never from inside it: a client must never see a point that a rollback then removes).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from scheduler.models import Job

log = logging.getLogger("metrics.push")

MESSAGE_TYPE = "job.update"  # handled by JobUpdatesConsumer.job_update


def job_group(job_id: object) -> str:
    return f"job-{job_id}"


def subteam_group(slug: str) -> str:
    return f"subteam-{slug}"


def push_job(
    job: Job,
    *,
    state: str | None = None,
    log_text: str | None = None,
    points: dict[str, list[tuple[int, float]]] | None = None,
    refresh: bool = False,
    stream: str | None = None,
) -> None:
    """Send a job's new state, log text and/or points to its watchers once the transaction commits.
    `refresh`: too many new points to send; the charts re-query the series instead."""
    job_id, subteam_id = job.pk, job.subteam_id

    def send() -> None:
        from metrics.progress import job_progress
        from portal.models import Subteam

        message: dict[str, Any] = {"type": MESSAGE_TYPE, "job": str(job_id)}
        if state is not None:
            message["state"] = state
        if log_text is not None:
            message["log_text"] = log_text
            if stream is not None:
                message["log_stream"] = stream
        if points:
            message["points"] = {key: [[s, v] for s, v in values] for key, values in points.items()}
        if refresh:
            message["refresh"] = True
        if points or refresh or state is not None:
            fresh = Job.objects.filter(pk=job_id).select_related("cluster").first()
            progress = job_progress(fresh) if fresh is not None else None
            if progress is not None:
                message["progress"] = progress.as_dict()
        slug = Subteam.objects.filter(pk=subteam_id).values_list("slug", flat=True).first()
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(job_group(job_id), message)
            if slug:
                async_to_sync(layer.group_send)(subteam_group(slug), message)
        except Exception:  # a broken channel layer never breaks ingestion
            log.exception("push for job %s failed", job_id)

    transaction.on_commit(send)


def on_log_appended(sender: object, job: Job, stream: str, text: str, **kwargs: object) -> None:
    """Receiver of scheduler.hooks.job_log_appended (sent after commit)."""
    push_job(job, log_text=text, stream=stream)


def on_state_changed(sender: object, job: Job, old: str, new: str, **kwargs: object) -> None:
    """Receiver of scheduler.hooks.job_state_changed (already sent after commit)."""
    push_job(job, state=new)
