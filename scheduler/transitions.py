"""The one door for a job's state change: `transition()`.

A change is a conditional UPDATE (only from the state the caller saw) and its `JobEvent` row, in one
transaction; the event row is the durable record every later step reads (Slack notifications are
made from these rows by cursor, see `slackbot.delivery`). The websocket push goes after commit.
The worker, the services and the admin all change a job's state through here.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from portal.models import Member
from scheduler import live
from scheduler.models import Job, JobEvent


def transition(
    job: Job,
    to: str,
    *,
    expect_from: str,
    event: str = JobEvent.Kind.STATE,
    message: str = "",
    actor: Member | None = None,
    where: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """Move `job` from `expect_from` to `to`, setting `fields` too. False, with nothing written, when
    the row is no longer in `expect_from` (or no longer matches `where`, e.g. a worker's claim).
    On success the in-memory `job` carries the new values."""
    values = {"state": to, "updated_at": timezone.now(), **fields}
    with transaction.atomic():
        updated = Job.objects.filter(pk=job.pk, state=expect_from, **(where or {})).update(**values)
        if not updated:
            return False
        JobEvent.objects.create(
            job=job, kind=event, actor=actor, from_state=expect_from, to_state=to, message=message[:2000]
        )
        for name, value in values.items():
            setattr(job, name, value)
        live.push(job.pk, job.subteam_id, state=to)
    return True


def record(job: Job, kind: str, actor: Member | None = None, message: str = "", **states: str) -> JobEvent:
    """An event that changes no state (submitted, cancel requested, resubmitted)."""
    return JobEvent.objects.create(job=job, kind=kind, actor=actor, message=message, **states)
