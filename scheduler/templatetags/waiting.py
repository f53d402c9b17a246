"""`{{ job|waiting_words }}`: why a pending job waits, from the reason table alone (no query per row)."""

from __future__ import annotations

from django import template

from scheduler import pending
from scheduler.models import Job

register = template.Library()


@register.filter
def waiting_words(job: Job) -> str:
    if job.state != Job.State.PENDING:
        return ""
    return pending.words(job.reason or "None")[0]
