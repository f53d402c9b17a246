"""How far a training job has got: step / max steps, tokens seen, tokens/s and an ETA.

Requeues: a job Slurm requeued runs again from its last checkpoint (`Job.restarts`, `Job.running_since`).
Steps and tokens carry on across restarts as stored; the speed (steps/s) and so the ETA count only the
current run segment (points logged at or after `running_since`, else `started_at`), so the time lost
between the runs does not make the job look slower than it is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from metrics import store
from metrics.keys import STEP_KEY, TOKENS_KEY, TOKENS_PER_S_KEY, max_steps
from metrics.models import MetricPoint
from scheduler.models import Job

RATE_WINDOW_STEPS = 50  # the speed is measured over the last ~50 steps


@dataclass(frozen=True)
class Progress:
    step: int | None  # None: no step stored yet ("waiting for the first step")
    max_steps: int | None
    fraction: float | None  # 0..1, None without max_steps or before the first step
    tokens_seen: float | None
    tokens_per_s: float | None
    eta_seconds: float | None
    steps_per_s: float | None
    restarts: int = 0

    @property
    def started(self) -> bool:
        return self.step is not None

    @property
    def percent(self) -> float | None:
        return None if self.fraction is None else round(self.fraction * 100, 1)

    @property
    def aria_now(self) -> str:
        """aria-valuenow: always a number in 0..100 (0 while waiting or without max steps)."""
        return f"{self.percent or 0.0:.1f}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


def waiting(job: Job) -> Progress:
    """Before the first step is stored: an empty bar, never a full one."""
    return Progress(None, max_steps(job), None, None, None, None, None, job.restarts)


def job_progress(job: Job) -> Progress | None:
    """From the stored points and job.parameters["config"]; None before the first step is stored."""
    last = store.latest(job.pk, STEP_KEY)
    if last is None:
        return None
    step = int(last.step)
    total = max_steps(job)
    done = job.state == Job.State.COMPLETED
    fraction = (1.0 if done or step >= total else step / total) if total else None
    steps_per_s = _steps_per_s(job, last)
    tokens = store.latest(job.pk, TOKENS_KEY)
    tokens_seen = tokens.value if tokens is not None else None
    eta = None
    if total and (done or step >= total):
        eta = 0.0
    elif total and steps_per_s and not job.is_terminal:
        eta = max(0.0, (total - step) / steps_per_s)
    return Progress(
        step=step,
        max_steps=total,
        fraction=fraction,
        tokens_seen=tokens_seen,
        tokens_per_s=_tokens_per_s(job, step, tokens_seen, steps_per_s),
        eta_seconds=eta,
        steps_per_s=steps_per_s,
        restarts=job.restarts,
    )


def segment_start(job: Job) -> dt.datetime | None:
    """When the current run segment began: the last (re)start, else the first start."""
    return job.running_since or job.started_at


def _tokens_per_s(job: Job, step: int, tokens_seen: float | None, steps_per_s: float | None) -> float | None:
    """The last rate logged; a run's final point can read 0 (its last interval had no new tokens, or was
    too short to time): then the last non-zero rate, else the segment's average."""
    rate = store.latest(job.pk, TOKENS_PER_S_KEY)
    if rate is not None and rate.value > 0:
        return rate.value
    earlier = (
        MetricPoint.objects.filter(job_id=job.pk, key=TOKENS_PER_S_KEY, value__gt=0)
        .order_by("-step")
        .values_list("value", flat=True)
        .first()
    )
    if earlier is not None:
        return earlier
    if tokens_seen and steps_per_s and step > 0:
        return tokens_seen / step * steps_per_s  # tokens per step times steps per second
    return rate.value if rate is not None else None


def _steps_per_s(job: Job, last: MetricPoint) -> float | None:
    """Steps per second over the last ~RATE_WINDOW_STEPS steps of the current run segment."""
    if last.time is None:
        return None
    points = MetricPoint.objects.filter(job_id=job.pk, key=STEP_KEY, time__isnull=False)
    since = segment_start(job)
    if since is not None and last.time >= since:
        points = points.filter(time__gte=since)
    earlier = (
        points.filter(step__lte=last.step - RATE_WINDOW_STEPS).order_by("-step").first()
        or points.order_by("step").first()
    )
    if earlier is None or earlier.time is None or earlier.step >= last.step:
        return None
    elapsed = (last.time - earlier.time).total_seconds()
    return (last.step - earlier.step) / elapsed if elapsed > 0 else None
