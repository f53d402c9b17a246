"""Storing points and reading chart series: raw points plus min/max rollups kept at ingest.

A chart asks for a step range and at most N points (2,000). `series()` picks the finest rollup level
whose buckets over the range number at most N and reads those rows through the unique index
(job, key, level, bucket): the cost depends on N, not on the length of the series. Ranges of at most N
steps read the raw points. Every bucket keeps its minimum and maximum, so no spike is ever averaged
away.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Max, Min

from metrics.models import ROLLUP_BASE, ROLLUP_LEVELS, MetricBucket, MetricPoint

DEFAULT_POINTS = 2000
BATCH = 2000


@dataclass(frozen=True)
class Point:
    key: str
    step: int
    value: float
    time: dt.datetime | None = None


@dataclass
class _Agg:
    count: int
    total: float
    min_value: float
    max_value: float
    first_step: int
    last_step: int
    last_value: float

    def add(self, step: int, value: float) -> None:
        self.count += 1
        self.total += value
        self.min_value = min(self.min_value, value)
        self.max_value = max(self.max_value, value)
        if step < self.first_step:
            self.first_step = step
        if step >= self.last_step:
            self.last_step, self.last_value = step, value

    def merge(self, other: _Agg) -> None:
        self.count += other.count
        self.total += other.total
        self.min_value = min(self.min_value, other.min_value)
        self.max_value = max(self.max_value, other.max_value)
        self.first_step = min(self.first_step, other.first_step)
        if other.last_step >= self.last_step:
            self.last_step, self.last_value = other.last_step, other.last_value


_AGG_FIELDS = ["count", "total", "min_value", "max_value", "first_step", "last_step", "last_value"]


def add_points(job_id: Any, points: Sequence[Point]) -> int:
    """Insert points and fold them into every rollup level. Call inside the caller's transaction
    (the one that advances the read cursor), so points and rollups commit together."""
    if not points:
        return 0
    MetricPoint.objects.bulk_create(
        [MetricPoint(job_id=job_id, key=p.key, step=p.step, value=p.value, time=p.time) for p in points],
        batch_size=BATCH,
    )
    keys = sorted({p.key for p in points})
    for level in range(1, ROLLUP_LEVELS + 1):
        width = ROLLUP_BASE**level
        fresh: dict[tuple[str, int], _Agg] = {}
        for p in points:
            slot = (p.key, p.step // width)
            agg = fresh.get(slot)
            if agg is None:
                fresh[slot] = _Agg(1, p.value, p.value, p.value, p.step, p.step, p.value)
            else:
                agg.add(p.step, p.value)
        buckets = [b for _, b in fresh]
        existing = MetricBucket.objects.filter(
            job_id=job_id, level=level, key__in=keys, bucket__gte=min(buckets), bucket__lte=max(buckets)
        ).values("key", "bucket", *_AGG_FIELDS)
        for row in existing:
            slot = (row["key"], row["bucket"])
            if slot in fresh:
                merged = _Agg(*(row[f] for f in _AGG_FIELDS))
                merged.merge(fresh[slot])
                fresh[slot] = merged
        MetricBucket.objects.bulk_create(
            [
                MetricBucket(job_id=job_id, key=key, level=level, bucket=bucket, **vars(agg))
                for (key, bucket), agg in fresh.items()
            ],
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=["job", "key", "level", "bucket"],
            update_fields=_AGG_FIELDS,
        )
    return len(points)


def level_for(lo: int, hi: int, points: int) -> int:
    """The finest level whose buckets over steps lo..hi number at most `points` (0: raw points)."""
    for level in range(ROLLUP_LEVELS + 1):
        width = ROLLUP_BASE**level
        if hi // width - lo // width + 1 <= points:
            return level
    return ROLLUP_LEVELS


def series(
    job_id: Any,
    key: str,
    min_step: int | None = None,
    max_step: int | None = None,
    points: int = DEFAULT_POINTS,
) -> dict[str, Any]:
    """At most ~`points` buckets of one series over [min_step, max_step] (default: all of it).

    Each bucket i covers steps [steps[i] // width * width, + width) and gives the mean (`values`), the
    minimum and the maximum of the raw points in it. `width` 1 means raw points (one per step).
    """
    out: dict[str, Any] = {
        "job": str(job_id),
        "key": key,
        "width": 1,
        "steps": [],
        "values": [],
        "mins": [],
        "maxs": [],
    }
    lo, hi = min_step, max_step
    if lo is None or hi is None:
        extent = _extent(job_id, key)
        if extent is None:
            return out
        lo = extent[0] if lo is None else lo
        hi = extent[1] if hi is None else hi
    if hi < lo:
        return out
    level = level_for(lo, hi, max(1, points))
    if level == 0:
        raw = (
            MetricPoint.objects.filter(job_id=job_id, key=key, step__gte=lo, step__lte=hi)
            .order_by("step", "id")
            .values_list("step", "value")
        )
        _append_raw(out, raw)
        return out
    width = ROLLUP_BASE**level
    rows = (
        MetricBucket.objects.filter(
            job_id=job_id, key=key, level=level, bucket__gte=lo // width, bucket__lte=hi // width
        )
        .order_by("bucket")
        .values_list("first_step", "total", "count", "min_value", "max_value")
    )
    out["width"] = width
    for first_step, total, count, low, high in rows:
        out["steps"].append(first_step)
        out["values"].append(total / count)
        out["mins"].append(low)
        out["maxs"].append(high)
    return out


def _append_raw(out: dict[str, Any], raw: Iterable[tuple[int, float]]) -> None:
    """One bucket per step (a step logged twice, e.g. after a resume, keeps both values' extremes)."""
    steps, values, mins, maxs = out["steps"], out["values"], out["mins"], out["maxs"]
    counts: list[int] = []
    for step, value in raw:
        if steps and steps[-1] == step:
            counts[-1] += 1
            values[-1] += (value - values[-1]) / counts[-1]
            mins[-1] = min(mins[-1], value)
            maxs[-1] = max(maxs[-1], value)
            continue
        steps.append(step)
        values.append(value)
        mins.append(value)
        maxs.append(value)
        counts.append(1)


def _extent(job_id: Any, key: str) -> tuple[int, int] | None:
    """First and last step of a series, from the top rollup level (a handful of rows)."""
    top = MetricBucket.objects.filter(job_id=job_id, key=key, level=ROLLUP_LEVELS).aggregate(
        lo=Min("first_step"), hi=Max("last_step")
    )
    if top["lo"] is None:
        return None
    return int(top["lo"]), int(top["hi"])


def keys(job_ids: Iterable[Any]) -> list[str]:
    """The keys stored for these jobs (from the top rollup level: one row per key per 16M steps)."""
    return sorted(
        set(
            MetricBucket.objects.filter(job_id__in=list(job_ids), level=ROLLUP_LEVELS).values_list(
                "key", flat=True
            )
        )
    )


def latest(job_id: Any, key: str) -> MetricPoint | None:
    return MetricPoint.objects.filter(job_id=job_id, key=key).order_by("-step", "-id").first()
