"""How far a training job has got: step / max steps, tokens seen, tokens/s and an ETA."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from metrics import store
from metrics.keys import STEP_KEY, TOKENS_KEY, TOKENS_PER_S_KEY, max_steps
from metrics.models import MetricPoint
from scheduler.models import Job

RATE_WINDOW_STEPS = 50  # the speed is measured over the last ~50 steps


@dataclass(frozen=True)
class Progress:
    step: int
    max_steps: int | None
    fraction: float | None  # 0..1, None without max_steps
    tokens_seen: float | None
    tokens_per_s: float | None
    eta_seconds: float | None
    steps_per_s: float | None

    @property
    def percent(self) -> float | None:
        return None if self.fraction is None else round(self.fraction * 100, 1)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": self.percent}


def job_progress(job: Job) -> Progress | None:
    """From the stored points and job.parameters["config"]; None before the first step is stored."""
    last = store.latest(job.pk, STEP_KEY)
    if last is None:
        return None
    step = int(last.step)
    total = max_steps(job)
    fraction = min(1.0, step / total) if total else None
    steps_per_s = _steps_per_s(job, last)
    tokens = store.latest(job.pk, TOKENS_KEY)
    tokens_seen = tokens.value if tokens is not None else None
    rate = store.latest(job.pk, TOKENS_PER_S_KEY)
    eta = None
    if total and steps_per_s and not job.is_terminal:
        eta = max(0.0, (total - step) / steps_per_s)
    elif total and step >= total:
        eta = 0.0
    return Progress(
        step=step,
        max_steps=total,
        fraction=fraction,
        tokens_seen=tokens_seen,
        tokens_per_s=rate.value if rate is not None else None,
        eta_seconds=eta,
        steps_per_s=steps_per_s,
    )


def _steps_per_s(job: Job, last: MetricPoint) -> float | None:
    if last.time is None:
        return None
    earlier = (
        MetricPoint.objects.filter(
            job_id=job.pk, key=STEP_KEY, step__lte=last.step - RATE_WINDOW_STEPS, time__isnull=False
        )
        .order_by("-step")
        .first()
    ) or MetricPoint.objects.filter(job_id=job.pk, key=STEP_KEY, time__isnull=False).order_by("step").first()
    if earlier is None or earlier.time is None or earlier.step >= last.step:
        return None
    elapsed = (last.time - earlier.time).total_seconds()
    return (last.step - earlier.step) / elapsed if elapsed > 0 else None
