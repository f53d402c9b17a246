"""Live updates to the pages watching a job: the websocket groups `job-<uuid>` and `subteam-<slug>`.

Ephemeral by design: a push is sent after the surrounding transaction commits (never from inside it,
so a client never sees a change that a rollback then removes) and is lost if the process dies first.
What must not be lost (events, notifications) is written in the transaction itself. The consumers
that forward these messages to browsers live in `metrics.consumers`; they add the progress figures.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from portal.models import Subteam

log = logging.getLogger(__name__)

MESSAGE_TYPE = "job.update"  # handled by the consumers' `job_update`


def job_group(job_id: object) -> str:
    return f"job-{job_id}"


def subteam_group(slug: str) -> str:
    return f"subteam-{slug}"


def push(job_id: object, subteam_id: int, **fields: Any) -> None:
    """Send `{"job": <uuid>, **fields}` to the job's and its subteam's watchers after commit."""
    transaction.on_commit(lambda: send(job_id, subteam_id, **fields))


def send(job_id: object, subteam_id: int, **fields: Any) -> None:
    """Send now (call it after commit, e.g. from an `on_commit` callback)."""
    layer = get_channel_layer()
    if layer is None:
        return
    message: dict[str, Any] = {"type": MESSAGE_TYPE, "job": str(job_id), **fields}
    slug = Subteam.objects.filter(pk=subteam_id).values_list("slug", flat=True).first()
    try:
        async_to_sync(layer.group_send)(job_group(job_id), message)
        if slug:
            async_to_sync(layer.group_send)(subteam_group(slug), message)
    except Exception:  # a broken channel layer never breaks the worker or a request
        log.exception("push for job %s failed", job_id)
