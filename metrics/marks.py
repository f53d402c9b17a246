"""Marks on a job's loss chart: the loss alerts (`metrics.watch`: a spike or NaN, at its step) and the
restarts after a Slurm requeue (at the step the run had reached: the last point stored before the
restart's event)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.db.models import OuterRef, Subquery

from metrics.keys import STEP_KEY
from metrics.models import MetricPoint
from scheduler.models import Job, JobEvent

ALERT_STEP = re.compile(r"^loss (?:spike|is \S+) at step (\d+)")


def for_job(job: Job, events: Sequence[JobEvent] | None = None) -> list[dict[str, Any]]:
    """[{"step", "kind": "alert" | "restart"}], in step order. `events`: the job's events if already read
    (then at most one query, only when the job restarted), else one more query reads them."""
    kinds = (JobEvent.Kind.LOSS_ALERT, JobEvent.Kind.RESTARTED)
    if events is None:
        events = list(JobEvent.objects.filter(job_id=job.pk, kind__in=kinds))
    out: list[dict[str, Any]] = []
    restarts = []
    for event in events:
        if event.kind == JobEvent.Kind.LOSS_ALERT:
            match = ALERT_STEP.match(event.message)
            if match:
                out.append({"step": int(match[1]), "kind": "alert"})
        elif event.kind == JobEvent.Kind.RESTARTED:
            restarts.append(event.pk)
    if restarts:
        reached = MetricPoint.objects.filter(
            job_id=OuterRef("job_id"), key=STEP_KEY, time__lt=OuterRef("at")
        ).order_by("-time", "-step")
        steps = JobEvent.objects.filter(pk__in=restarts).annotate(step=Subquery(reached.values("step")[:1]))
        out += [
            {"step": step, "kind": "restart"}
            for step in steps.values_list("step", flat=True)
            if step is not None
        ]
    return sorted(out, key=lambda mark: (mark["step"], mark["kind"]))
