"""Storing points and reading chart series: raw points plus min/max rollups kept at ingest.

A chart asks for a step range and at most N points (2,000). `series()` picks the finest rollup level
whose buckets over the range number at most N and reads those rows through the unique index
(job, key, level, bucket): the cost depends on N, not on the length of the series. Ranges of at most N
steps read the raw points. Every bucket keeps its minimum and maximum, so no spike is ever averaged
away.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from itertools import chain, compress, islice, repeat
from operator import add, floordiv, itemgetter, ne, sub
from typing import Any, NamedTuple, cast

from django.db import connections, transaction
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Max, Min

from metrics.models import ROLLUP_BASE, ROLLUP_LEVELS, MetricBucket, MetricPoint

DEFAULT_POINTS = 2000


class Point(NamedTuple):
    """A tuple, not a dataclass: ingestion makes ~7 per history row, and tuples are cheaper to make and
    to unpack."""

    key: str
    step: int
    value: float
    time: dt.datetime | None = None


# One rollup row: (key, level, bucket, count, total, min, max, first step, last step, last value).
Rollup = tuple[str, int, int, int, float, float, float, int, int, float]


def add_points(job_id: Any, points: Sequence[Point]) -> int:
    """Insert points and fold them into every rollup level. Call inside the caller's transaction
    (the one that advances the read cursor), so points and rollups commit together.

    A constant number of statements, whatever the number of points (tested):

    1. Raw points: no model instances (this is the ingest hot path): COPY (binary) on PostgreSQL;
       executemany of multi-row VALUES statements on SQLite, each timestamp converted once per history
       row (its points share it).
    2. The rollups of every level, computed here from the points (`rollups`), then merged into the
       stored buckets by one INSERT … ON CONFLICT DO UPDATE (count and total add up, min/max widen,
       the later last step wins): from a temporary table filled by COPY on PostgreSQL, by executemany
       on SQLite.
    """
    if not points:
        return 0
    connection = connections[MetricPoint.objects.db]
    job_value = MetricPoint._meta.get_field("job").get_db_prep_value(job_id, connection)
    rows = rollups(points)
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _copy_points(cursor, connection, job_value, points)
            _merge_rollups_postgresql(cursor, connection, job_value, rows)
        else:
            _insert_points_sqlite(cursor, connection, job_value, points)
            _merge_rollups_sqlite(cursor, connection, job_value, rows)
    return len(points)


def rollups(points: Iterable[Point]) -> list[Rollup]:
    """The aggregates of the points at every level 1…ROLLUP_LEVELS, one row per (key, level, bucket).

    1. The points by key, in step order (a stable sort: of two values at one step, the later one read
       is the bucket's last value, as when they are merged one by one).
    2. The raw points are level 0 (each its own bucket of one); each level comes from the one below
       (`_coarser`): about 1.33 x the points in all, whatever the number of levels.
    """
    by_key: dict[str, list[Point]] = defaultdict(list)
    for point in points:
        by_key[point[0]].append(point)
    out: list[Rollup] = []
    for key, series in by_key.items():
        series.sort(key=_STEP)
        steps: list[int] = list(map(_STEP, series))
        values: list[float] = list(map(_VALUE, series))
        level: _Level = (steps, [1] * len(steps), values, values, values, steps, steps, values)
        for number in range(1, ROLLUP_LEVELS + 1):
            level = _coarser(level)
            out += zip(repeat(key), repeat(number), *level, strict=False)
    return out


_KEY, _STEP, _VALUE, _TIME = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)

# A level's aggregates of one key as parallel lists, in bucket order:
# (bucket, count, total, min, max, first step, last step, last value).
_Level = tuple[list[int], list[int], list[float], list[float], list[float], list[int], list[int], list[float]]


def _coarser(finer: _Level) -> _Level:
    """The next level: each run of buckets that share `bucket // ROLLUP_BASE` becomes one. Each column is
    one map over the runs (their starts found by comparing neighbours), so the loops run in C."""
    buckets, counts, totals, lows, highs, firsts, lasts, last_values = finer
    ids = list(map(floordiv, buckets, repeat(ROLLUP_BASE)))
    starts = [0, *compress(range(1, len(ids)), map(ne, islice(ids, 1, None), ids))]
    ends = [*islice(starts, 1, None), len(ids)]
    spans = list(map(slice, starts, ends))
    last = list(map(sub, ends, repeat(1)))
    return (
        list(map(ids.__getitem__, starts)),
        list(map(sum, map(counts.__getitem__, spans))),
        list(map(sum, map(totals.__getitem__, spans))),
        list(map(min, map(lows.__getitem__, spans))),
        list(map(max, map(highs.__getitem__, spans))),
        list(map(firsts.__getitem__, starts)),
        list(map(lasts.__getitem__, last)),
        list(map(last_values.__getitem__, last)),
    )


_POINT_COLUMNS = "job_id, key, step, value, time"


def _copy_points(cursor: Any, connection: Any, job_value: Any, points: Sequence[Point]) -> None:
    """COPY … FROM STDIN in binary: the fastest way in, with no statement text or parameter limit."""
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    sql = f"COPY {table} ({_POINT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
    _copy(cursor, sql, _POINT_TYPES, map(add, repeat((job_value,)), points))


def _insert_points_sqlite(cursor: Any, connection: Any, job_value: Any, points: Sequence[Point]) -> None:
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    # A history row's points share one timestamp: each is converted once (Django stores it as text).
    texts = {time: _sqlite_datetime(connection, time) for time in set(map(_TIME, points))}
    flat = list(
        chain.from_iterable(
            zip(
                repeat(job_value),
                map(_KEY, points),
                map(_STEP, points),
                map(_VALUE, points),
                map(texts.__getitem__, map(_TIME, points)),
                strict=False,
            )
        )
    )
    _executemany_rows(cursor, connection, f"INSERT INTO {table} ({_POINT_COLUMNS}) VALUES {{rows}}", flat, 5)  # noqa: S608 - names are ours


def _sqlite_datetime(connection: Any, value: dt.datetime | None) -> str | None:
    """What DateTimeField sends SQLite: the time in the connection's zone, naive, as ISO text."""
    if value is None:
        return None
    if value.tzinfo is not None:  # always, from ingestion: the short way to the same text
        return str(value.astimezone(connection.timezone).replace(tzinfo=None))
    return cast(str, connection.ops.adapt_datetimefield_value(value))


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


def _merge_rollups_postgresql(cursor: Any, connection: Any, job_value: Any, rows: list[Rollup]) -> None:
    """COPY the rows into a temporary table, then one INSERT … SELECT merges them into the stored
    buckets (several times faster than the same rows as array parameters, which Django's client-side
    binding sends as text)."""
    table = connection.ops.quote_name(MetricBucket._meta.db_table)
    merge = _MERGE.format(least="LEAST", greatest="GREATEST")
    cursor.execute(
        f"""CREATE TEMPORARY TABLE {_ROLLUPS_IN} (key text, level smallint, bucket bigint, count int,
        total float8, min_value float8, max_value float8, first_step bigint, last_step bigint,
        last_value float8) ON COMMIT DROP""",
    )
    _copy(cursor, f"COPY {_ROLLUPS_IN} FROM STDIN (FORMAT BINARY)", _ROLLUP_TYPES, rows)
    cursor.execute(
        f"INSERT INTO {table} AS b ({_BUCKET_COLUMNS}) SELECT %s, * FROM {_ROLLUPS_IN} {merge}",  # noqa: S608 - names are ours
        [job_value],
    )
    cursor.execute(f"DROP TABLE {_ROLLUPS_IN}")  # add_points may run again in this transaction


_ROLLUPS_IN = "metrics_rollups_in"
_ROLLUP_TYPES = ["text", "int2", "int8", "int4", "float8", "float8", "float8", "int8", "int8", "float8"]
_POINT_TYPES = ["uuid", "text", "int8", "float8", "timestamptz"]


def _copy(cursor: Any, sql: str, types: list[str], rows: Iterable[Sequence[Any]]) -> None:
    """COPY … FROM STDIN in binary through psycopg (Django has no COPY; its debug cursor, in tests and
    with DEBUG, records the statement like any other)."""
    logged = cursor.debug_sql(sql) if isinstance(cursor, CursorDebugWrapper) else nullcontext()
    with logged, cursor.cursor.copy(sql) as copy:
        copy.set_types(types)
        write = copy.write_row
        for row in rows:
            write(row)


def _merge_rollups_sqlite(cursor: Any, connection: Any, job_value: Any, rows: list[Rollup]) -> None:
    table = connection.ops.quote_name(MetricBucket._meta.db_table)
    merge = _MERGE.format(least="MIN", greatest="MAX")
    flat = list(chain.from_iterable(map(add, repeat((job_value,)), rows)))
    template = f"INSERT INTO {table} AS b ({_BUCKET_COLUMNS}) VALUES {{rows}} {merge}"  # noqa: S608 - names are ours
    _executemany_rows(cursor, connection, template, flat, 11)


def _executemany_rows(cursor: Any, connection: Any, template: str, flat: list[Any], width: int) -> None:
    """Two executemany calls, whatever the number of rows: `template` with its {rows} as many
    placeholder rows as the parameter limit allows (one statement compiled, one loop in C), then the
    rows left over one by one."""
    row = "(" + ", ".join(["%s"] * width) + ")"
    per_statement = connection.features.max_query_params // width
    size = per_statement * width
    whole = len(flat) // size * size
    cursor.executemany(
        template.format(rows=", ".join([row] * per_statement)),
        [flat[start : start + size] for start in range(0, whole, size)],
    )
    cursor.executemany(
        template.format(rows=row), [flat[start : start + width] for start in range(whole, len(flat), width)]
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
