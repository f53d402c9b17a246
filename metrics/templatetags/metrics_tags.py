"""Template helpers for the metrics panels: a job's progress, a subteam's training runs."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django import template
from django.db.models import Q

from metrics import marks
from metrics.progress import Progress, job_progress, waiting
from portal.models import Subteam
from scheduler.models import Job

register = template.Library()

SUBTEAM_RUNS = 6


@dataclass(frozen=True)
class Run:
    job: Job
    progress: Progress


@register.simple_tag
def metrics_progress(job: Job) -> Progress:
    return job_progress(job) or waiting(job)


@register.simple_tag
def subteam_runs(subteam: Subteam) -> list[Run]:
    """The subteam's running, then most recent, training jobs (or any job that logged metrics)."""
    jobs = (
        Job.objects.filter(subteam=subteam)
        .filter(Q(kind__in=Job.Kind.kinds_that_train()) | Q(metric_cursor__points__gt=0))
        .select_related("cluster", "owner__user")
        .order_by("-started_at", "-created_at")[:SUBTEAM_RUNS]
    )
    runs = [Run(job, job_progress(job) or waiting(job)) for job in jobs]
    return sorted(runs, key=lambda run: run.job.is_terminal)


@register.filter
def compact(number: object) -> str:
    """12.3K, 4.5M, 1.2B; empty for anything but a number."""
    if not isinstance(number, int | float):
        return ""
    for limit, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(number) >= limit:
            return f"{number / limit:.1f}{suffix}"
    return f"{number:.0f}"


@register.simple_tag
def state_labels() -> str:
    """Job states and their labels in the viewer's language, as JSON for a data attribute (pushed
    messages carry only the state: each page shows it in its own language)."""
    return json.dumps({value: str(label) for value, label in Job.State.choices}, ensure_ascii=False)


@register.simple_tag
def job_ids(runs: list[Run]) -> str:
    return ",".join(str(run.job.pk) for run in runs)


@register.simple_tag
def chart_marks(job: Job, events: object = None) -> str:
    """The loss chart's marks (loss alerts, restarts) as JSON for its `data-marks` attribute. `events`:
    the job's events when the page has them already (no query), else they are read here."""
    return json.dumps(marks.for_job(job, events if isinstance(events, list) else None))
