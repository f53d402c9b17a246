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

from django.db import connections
from django.db.models import Max, Min

from metrics.models import ROLLUP_BASE, ROLLUP_LEVELS, MetricBucket, MetricPoint

DEFAULT_POINTS = 2000
PG_CHUNK = 50_000  # rows per array-parameter statement on PostgreSQL


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


def add_points(job_id: Any, points: Sequence[Point]) -> int:
    """Insert points and fold them into every rollup level. Call inside the caller's transaction
    (the one that advances the read cursor), so points and rollups commit together.

    1. Raw points: no model instances (this is the ingest hot path): executemany on SQLite, one
       INSERT … SELECT FROM unnest(arrays) per 50,000 rows on PostgreSQL.
    2. Level 1 aggregates from the points, each further level from the one below (4 buckets -> 1), so
       the work is ~1.33 x the points whatever the number of levels.
    3. Each level: INSERT … ON CONFLICT DO UPDATE merges into the stored buckets in the database
       (count and total add up, min/max widen, the later last step wins).
    """
    if not points:
        return 0
    connection = connections[MetricPoint.objects.db]
    job_value = MetricPoint._meta.get_field("job").get_db_prep_value(job_id, connection)
    with connection.cursor() as cursor:
        _insert_points(cursor, connection, job_value, points)
        level_aggs: dict[tuple[str, int], _Agg] = {}
        for p in points:
            slot = (p.key, p.step // ROLLUP_BASE)
            agg = level_aggs.get(slot)
            if agg is None:
                level_aggs[slot] = _Agg(1, p.value, p.value, p.value, p.step, p.step, p.value)
            else:
                agg.add(p.step, p.value)
        for level in range(1, ROLLUP_LEVELS + 1):
            if level > 1:
                coarser: dict[tuple[str, int], _Agg] = {}
                for (key, bucket), agg in level_aggs.items():
                    slot = (key, bucket // ROLLUP_BASE)
                    into = coarser.get(slot)
                    if into is None:
                        coarser[slot] = _Agg(**vars(agg))
                    else:
                        into.merge(agg)
                level_aggs = coarser
            _upsert(cursor, connection, job_value, level, level_aggs)
    return len(points)


def _insert_points(cursor: Any, connection: Any, job_value: Any, points: Sequence[Point]) -> None:
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    if connection.vendor == "postgresql":
        # One statement per chunk with array parameters: no per-row statement, no huge query text.
        for start in range(0, len(points), PG_CHUNK):
            chunk = points[start : start + PG_CHUNK]
            cursor.execute(
                f"""INSERT INTO {table} (job_id, key, step, value, time)
                SELECT %s, * FROM unnest(%s::text[], %s::bigint[], %s::float8[], %s::timestamptz[])""",  # noqa: S608 - names are ours
                [
                    job_value,
                    [p.key for p in chunk],
                    [p.step for p in chunk],
                    [p.value for p in chunk],
                    [p.time for p in chunk],
                ],
            )
        return
    time_field = MetricPoint._meta.get_field("time")
    cursor.executemany(
        f"INSERT INTO {table} (job_id, key, step, value, time) VALUES (%s, %s, %s, %s, %s)",  # noqa: S608 - names are ours
        [
            (job_value, p.key, p.step, p.value, time_field.get_db_prep_value(p.time, connection))
            for p in points
        ],
    )


_MERGE = """ON CONFLICT (job_id, key, level, bucket) DO UPDATE SET
    count = b.count + excluded.count,
    total = b.total + excluded.total,
    min_value = {least}(b.min_value, excluded.min_value),
    max_value = {greatest}(b.max_value, excluded.max_value),
    first_step = {least}(b.first_step, excluded.first_step),
    last_value = CASE WHEN excluded.last_step >= b.last_step THEN excluded.last_value ELSE b.last_value END,
    last_step = {greatest}(b.last_step, excluded.last_step)"""
_BUCKET_COLUMNS = (
    "job_id, key, level, bucket, count, total, min_value, max_value, first_step, last_step, last_value"
)


def _upsert(
    cursor: Any, connection: Any, job_value: Any, level: int, aggs: dict[tuple[str, int], _Agg]
) -> None:
    """Merge one level's aggregates into the stored buckets (SET reads the row as it was)."""
    table = connection.ops.quote_name(MetricBucket._meta.db_table)
    if connection.vendor == "postgresql":
        merge = _MERGE.format(least="LEAST", greatest="GREATEST")
        items = list(aggs.items())
        for start in range(0, len(items), PG_CHUNK):
            chunk = items[start : start + PG_CHUNK]
            cursor.execute(
                f"""INSERT INTO {table} AS b ({_BUCKET_COLUMNS})
                SELECT %s, k, %s, bk, c, t, mn, mx, fs, ls, lv FROM unnest(
                    %s::text[], %s::bigint[], %s::int[], %s::float8[], %s::float8[], %s::float8[],
                    %s::bigint[], %s::bigint[], %s::float8[]) AS u(k, bk, c, t, mn, mx, fs, ls, lv)
                {merge}""",  # noqa: S608 - names are ours
                [
                    job_value,
                    level,
                    [key for (key, _), _a in chunk],
                    [bucket for (_, bucket), _a in chunk],
                    [a.count for _, a in chunk],
                    [a.total for _, a in chunk],
                    [a.min_value for _, a in chunk],
                    [a.max_value for _, a in chunk],
                    [a.first_step for _, a in chunk],
                    [a.last_step for _, a in chunk],
                    [a.last_value for _, a in chunk],
                ],
            )
        return
    merge = _MERGE.format(least="MIN", greatest="MAX")
    cursor.executemany(
        f"INSERT INTO {table} AS b ({_BUCKET_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) {merge}",  # noqa: S608 - names are ours
        [
            (
                job_value,
                key,
                level,
                bucket,
                a.count,
                a.total,
                a.min_value,
                a.max_value,
                a.first_step,
                a.last_step,
                a.last_value,
            )
            for (key, bucket), a in aggs.items()
        ],
    )


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
