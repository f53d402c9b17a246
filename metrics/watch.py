"""The loss-spike watch: while a run trains, a loss that jumps far above its recent values, or is not a
number, is marked and told within the cycle that read it.

A point is a spike when its robust z-score against the previous `window` losses exceeds the threshold:
z = (value − median) / (1.4826 · MAD), the median absolute deviation scaled to a standard deviation, so
a few earlier spikes do not hide the next one (a mean and standard deviation would be dragged up by
them). Only upward jumps count (a loss that drops fast is good news), and nothing is judged before
`min_points` losses are known. After an alert the watch stays quiet for `window` steps: one event per
episode, not one per noisy step. NaN or infinite losses (W&B writes them; ingestion stores only finite
values) are alerts of their own.

Each alert is a `JobEvent` of kind `loss_alert` on the job (its timeline, the triage of a run that
then fails, the Slack message to the subteam's channel naming the owner) and a push to the job's
chart, which marks the step. Settings: METRICS_SPIKE_Z (default 8), METRICS_SPIKE_WINDOW (50).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.conf import settings

from metrics import push
from metrics.keys import STEP_KEY
from metrics.models import MetricPoint
from metrics.store import Points
from metrics.wandb_file import HistoryRow
from scheduler.models import Job, JobEvent
from scheduler.transitions import record

LOSS_KEY = "train/loss"
MAD_TO_SIGMA = 1.4826
MIN_SPREAD = 1e-6  # a flat loss (MAD 0) still needs a real jump: spread floored relative to the median


def threshold() -> float:
    return float(getattr(settings, "METRICS_SPIKE_Z", 8.0))


def window() -> int:
    return int(getattr(settings, "METRICS_SPIKE_WINDOW", 50))


@dataclass(frozen=True)
class Alert:
    step: int
    value: float  # NaN/inf for a non-finite loss
    median: float | None
    z: float | None

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)

    def message(self) -> str:
        """The JobEvent's message (English, like Slurm's words; pages translate the kind)."""
        if not self.finite:
            return f"loss is {self.value} at step {self.step}"
        return f"loss spike at step {self.step}: {self.value:.4g} (median {self.median:.4g}, z {self.z:.1f})"


def find(
    history: Sequence[float],
    new: Iterable[tuple[int, float]],
    *,
    quiet_until: int = -1,
    z_limit: float | None = None,
    size: int | None = None,
    min_points: int = 20,
) -> list[Alert]:
    """Alerts among `new` (step, value) points, judged against `history` (the losses before them, oldest
    first) and each other. `quiet_until`: no spike alert at or before this step (the last alert's
    cooldown)."""
    z_limit = threshold() if z_limit is None else z_limit
    size = window() if size is None else size
    recent = [v for v in history if math.isfinite(v)][-size:]
    alerts: list[Alert] = []
    for step, value in new:
        if not math.isfinite(value):
            alerts.append(Alert(step, value, None, None))
            continue
        if len(recent) >= min_points and step > quiet_until:
            median = statistics.median(recent)
            mad = statistics.median(abs(v - median) for v in recent)
            spread = max(MAD_TO_SIGMA * mad, MIN_SPREAD * max(1.0, abs(median)))
            z = (value - median) / spread
            if z > z_limit:
                alerts.append(Alert(step, value, median, z))
                quiet_until = step + size
        recent.append(value)
        if len(recent) > size:
            del recent[0]
    return alerts


def observe(job: Job, points: Points, events: Sequence[object]) -> list[Alert]:
    """Watch a chunk just stored for `job` (inside ingestion's transaction, so a chunk read twice is
    watched once): its loss points, and the history rows whose loss was not finite. Records each alert as
    a `loss_alert` JobEvent and pushes it to the job's page."""
    series = points.by_key.get(LOSS_KEY)
    new = list(zip(series.steps, series.values, strict=True)) if series is not None else []
    for event in events:
        if isinstance(event, HistoryRow) and LOSS_KEY in event.nonfinite:
            step = event.values.get(STEP_KEY, event.step)
            new.append((int(step), math.nan))
    if not new:
        return []
    new.sort(key=lambda point: point[0])
    size = window()
    history = list(
        MetricPoint.objects.filter(job_id=job.pk, key=LOSS_KEY, step__lt=new[0][0])
        .order_by("-step")
        .values_list("value", flat=True)[:size]
    )[::-1]
    last = (
        JobEvent.objects.filter(job_id=job.pk, kind=JobEvent.Kind.LOSS_ALERT)
        .order_by("-at", "-id")
        .values_list("message", flat=True)
        .first()
    )
    quiet_until = _step_of(last) + size if last else -1
    alerts = find(history, new, quiet_until=quiet_until, size=size)
    for alert in alerts:
        record(job, JobEvent.Kind.LOSS_ALERT, message=alert.message())
        push.push_job(job, alert={"step": alert.step, "value": alert.value if alert.finite else None})
    return alerts


def _step_of(message: str) -> int:
    match = re.search(r"\bstep (\d+)", message)
    return int(match[1]) if match else -1
