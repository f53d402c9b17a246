"""Storing points and reading chart series: raw points plus min/max rollups kept at ingest.

A chart asks for a step range and at most N points (2,000). `series()` picks the finest level whose
buckets over the range number at most N (level L: buckets of 4**L steps). Levels from
ROLLUP_STORED_FROM up are kept as rows, read through the unique index (job, key, level, bucket); a finer
level serves ranges of at most 4 x N steps and is summed from the raw points of the range when read.
Either way the cost depends on N, not on the length of the series. Every bucket keeps its minimum and
maximum, so no spike is ever averaged away.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from itertools import chain, compress, islice, repeat
from operator import add, floordiv, le, ne, sub, truediv
from typing import Any, NamedTuple, cast

from django.db import connections, transaction
from django.db.backends.utils import CursorDebugWrapper
from django.db.models import Max, Min

from metrics.models import ROLLUP_BASE, ROLLUP_LEVELS, ROLLUP_STORED_FROM, MetricBucket, MetricPoint

DEFAULT_POINTS = 2000


class Point(NamedTuple):
    """One value of one key at one step (a convenience for callers; `Points` is what is stored)."""

    key: str
    step: int
    value: float
    time: dt.datetime | None = None


class Series(NamedTuple):
    """One key's points as parallel lists, in the order they were read."""

    steps: list[int]
    values: list[float]
    times: list[dt.datetime | None]


@dataclass
class Points:
    """A batch of points, grouped by key as they are added: what ingestion builds (a few list appends
    per point, no object per point) and `add_points` stores."""

    by_key: dict[str, Series] = field(default_factory=dict)

    @classmethod
    def of(cls, points: Iterable[Point]) -> Points:
        batch = cls()
        for point in points:
            batch.add(*point)
        return batch

    def add(self, key: str, step: int, value: float, time: dt.datetime | None = None) -> None:
        self.add_row(step, {key: value}, time)

    def add_row(self, step: int, values: Mapping[str, float], time: dt.datetime | None) -> None:
        """The values of one history row, all at `step` and `time` (the ingest hot path)."""
        by_key = self.by_key
        for key, value in values.items():
            series = by_key.get(key)
            if series is None:
                series = by_key[key] = Series([], [], [])
            steps, series_values, times = series
            steps.append(step)
            series_values.append(value)
            times.append(time)

    def pairs(self) -> dict[str, list[tuple[int, float]]]:
        """(step, value) pairs by key, in the order read (what the live push sends)."""
        return {key: list(zip(s.steps, s.values, strict=True)) for key, s in self.by_key.items()}

    def __len__(self) -> int:
        return sum(len(series.steps) for series in self.by_key.values())

    def __iter__(self) -> Iterator[Point]:
        """The points key by key, each key's in the order read."""
        for key, (steps, values, times) in self.by_key.items():
            yield from map(Point, repeat(key), steps, values, times)


# One rollup row: (key, level, bucket, count, total, min, max, first step, last step, last value).
Rollup = tuple[str, int, int, int, float, float, float, int, int, float]


def add_points(job_id: Any, points: Points | Iterable[Point]) -> int:
    """Insert points and fold them into every stored rollup level; the number of points. Call inside
    the caller's transaction (the one that advances the read cursor, which also keeps a second writer
    of the same job out), so points and rollups commit together.

    At most five statements, whatever the number of points (tested):

    1. Each key's points in step order (`_in_step_order`).
    2. One SELECT reads the stored buckets within the span of the new ones, at each stored level
       (`_stored_buckets`): for points that come in step order, at most the one per key and level that
       the previous batch ended in. The top-level ones give the points their `seq` (`_seqs`).
    3. Raw points, key by key in step order (each key's index entries go in side by side), with no
       model instances (this is the ingest hot path): COPY (binary) on PostgreSQL; executemany of
       multi-row VALUES statements on SQLite, each timestamp converted once per history row.
    4. The rollups of every stored level, computed here (`_levels`), the stored buckets merged in
       (count and total add up, min/max widen, the later last step wins). On PostgreSQL the new
       buckets go in by COPY and the merged ones by INSERT … ON CONFLICT DO UPDATE; on SQLite all by
       that INSERT (as fast there as a plain one).
    """
    batch = points if isinstance(points, Points) else Points.of(points)
    ordered = {key: _in_step_order(series) for key, series in batch.by_key.items() if series.steps}
    if not ordered:
        return 0
    connection = connections[MetricPoint.objects.db]
    job_value = MetricPoint._meta.get_field("job").get_db_prep_value(job_id, connection)
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        stored = _stored_buckets(cursor, connection, job_value, ordered)
        seqs = {key: _seqs(key, series.steps, stored) for key, series in ordered.items()}
        if connection.vendor == "postgresql":
            _store_postgresql(cursor, connection, job_value, ordered, seqs, stored)
        else:
            _store_sqlite(cursor, connection, job_value, ordered, seqs, stored)
    return sum(len(series.steps) for series in ordered.values())


def _rows(levels: list[tuple[str, int, _Level]]) -> list[Rollup]:
    return list(
        chain.from_iterable(zip(repeat(key), repeat(number), *level) for key, number, level in levels)
    )


# A level's aggregates of one key as parallel lists, in bucket order:
# (bucket, count, total, min, max, first step, last step, last value).
_Level = tuple[list[int], list[int], list[float], list[float], list[float], list[int], list[int], list[float]]


def _in_step_order(series: Series) -> Series:
    """The series sorted by step (stable: of two values at one step, the later one read stays last, so
    it is the bucket's last value, as when points are merged one by one). Already sorted, as a run's
    points are: returned as it is."""
    steps = series.steps
    if all(map(le, steps, islice(steps, 1, None))):
        return series
    order = sorted(range(len(steps)), key=steps.__getitem__)
    return Series(
        list(map(steps.__getitem__, order)),
        list(map(series.values.__getitem__, order)),
        list(map(series.times.__getitem__, order)),
    )


def _levels(ordered: Mapping[str, Series]) -> list[tuple[str, int, _Level]]:
    """Every key's stored levels, finest first.

    1. The first stored level straight from the raw points (`_from_raw`).
    2. Each level above from the one below (`_coarser`): each has a quarter of the buckets of the one
       below, so all of them together cost about a third of the first.
    """
    out: list[tuple[str, int, _Level]] = []
    for key, series in ordered.items():
        level = _from_raw(series.steps, series.values, ROLLUP_BASE**ROLLUP_STORED_FROM)
        out.append((key, ROLLUP_STORED_FROM, level))
        for number in range(ROLLUP_STORED_FROM + 1, ROLLUP_LEVELS + 1):
            level = _coarser(level)
            out.append((key, number, level))
    return out


def _runs(ids: list[int]) -> tuple[list[int], list[int]]:
    """Where each run of equal neighbours starts and ends (exclusive), found by comparing neighbours in
    C-level loops."""
    starts = [0, *compress(range(1, len(ids)), map(ne, islice(ids, 1, None), ids))]
    return starts, [*islice(starts, 1, None), len(ids)]


def _from_raw(steps: list[int], values: list[float], width: int) -> _Level:
    """Buckets of `width` steps over points in step order: each bucket's values are one slice, whose
    sum, min and max run in C."""
    ids = list(map(floordiv, steps, repeat(width)))
    starts, ends = _runs(ids)
    spans = list(map(values.__getitem__, map(slice, starts, ends)))
    last = list(map(sub, ends, repeat(1)))
    return (
        list(map(ids.__getitem__, starts)),
        list(map(sub, ends, starts)),
        list(map(sum, spans)),
        list(map(min, spans)),
        list(map(max, spans)),
        list(map(steps.__getitem__, starts)),
        list(map(steps.__getitem__, last)),
        list(map(values.__getitem__, last)),
    )


def _coarser(finer: _Level) -> _Level:
    """The next level: each run of buckets that share `bucket // ROLLUP_BASE` becomes one. Each column is
    one map over the runs, so the loops run in C."""
    buckets, counts, totals, lows, highs, firsts, lasts, last_values = finer
    ids = list(map(floordiv, buckets, repeat(ROLLUP_BASE)))
    starts, ends = _runs(ids)
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


_BUCKET_COLUMNS = (
    "job_id, key, level, bucket, count, total, min_value, max_value, first_step, last_step, last_value"
)
_BUCKET_TYPES = ["uuid", "text", "int2", "int8", "int4", *["float8"] * 3, "int8", "int8", "float8"]
_STORED_TERM = "(b.job_id = %s AND b.key = %s AND b.level = %s AND b.bucket BETWEEN %s AND %s)"


def _stored_buckets(
    cursor: Any, connection: Any, job_value: Any, ordered: Mapping[str, Series]
) -> dict[tuple[str, int, int], Rollup]:
    """The stored buckets that the new points' buckets of each key and level span, by (key, level,
    bucket): one range scan of the unique index per key and level.

    On PostgreSQL the spans are arrays, one statement whatever their number (an OR of some 80 terms
    takes milliseconds to plan, as long as the rest of a running job's cycle); OFFSET 0 keeps the
    lateral subquery a loop of index scans, where the planner would otherwise hash all the job's
    buckets. On SQLite they are ORed terms, each naming the job (or SQLite scans all the job's
    buckets), in as many statements as its parameter limit needs (one, unless a batch has thousands
    of keys)."""
    table = connection.ops.quote_name(MetricBucket._meta.db_table)
    terms = [
        (key, level, series.steps[0] // ROLLUP_BASE**level, series.steps[-1] // ROLLUP_BASE**level)
        for key, series in ordered.items()
        for level in range(ROLLUP_STORED_FROM, ROLLUP_LEVELS + 1)
    ]
    columns = ", ".join(f"b.{name}" for name in _BUCKET_COLUMNS.split(", ")[1:])
    if connection.vendor == "postgresql":
        statements = [
            (
                f"SELECT {columns} FROM unnest(%s::text[], %s::int2[], %s::int8[], %s::int8[]) "  # noqa: S608 - names are ours
                f"AS t(key, level, lo, hi), LATERAL (SELECT * FROM {table} WHERE job_id = %s AND key = t.key "
                "AND level = t.level AND bucket BETWEEN t.lo AND t.hi OFFSET 0) b",
                [*map(list, zip(*terms, strict=True)), job_value],
            )
        ]
    else:
        per_statement = connection.features.max_query_params // 5
        statements = [
            (
                f"SELECT {columns} FROM {table} b WHERE {' OR '.join([_STORED_TERM] * len(some))}",  # noqa: S608 - names are ours
                [value for term in some for value in (job_value, *term)],
            )
            for some in (
                terms[start : start + per_statement] for start in range(0, len(terms), per_statement)
            )
        ]
    stored: dict[tuple[str, int, int], Rollup] = {}
    for sql, params in statements:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            stored[row[0], row[1], row[2]] = cast(Rollup, tuple(row))
    return stored


def _seqs(key: str, steps: list[int], stored: dict[tuple[str, int, int], Rollup]) -> list[int]:
    """Each point's `seq` (the points in step order): its place among the key's points in its top-level
    bucket, after the ones stored there (the bucket's count)."""
    top = ROLLUP_BASE**ROLLUP_LEVELS
    ids = list(map(floordiv, steps, repeat(top)))
    seqs: list[int] = []
    for start, end in zip(*_runs(ids), strict=True):  # one run, but for a batch across 16.7M steps
        row = stored.get((key, ROLLUP_LEVELS, ids[start]))
        first = row[3] if row is not None else 0
        seqs += range(first, first + end - start)
    return seqs


def _merge(
    rows: list[Rollup], stored: dict[tuple[str, int, int], Rollup]
) -> tuple[list[Rollup], list[Rollup]]:
    """The rows split in two: buckets not stored yet, and stored ones with the new points merged in."""
    if not stored:
        return rows, []
    new: list[Rollup] = []
    merged: list[Rollup] = []
    for row in rows:
        old = stored.get((row[0], row[1], row[2]))
        if old is None:
            new.append(row)
            continue
        key, level, bucket, count, total, low, high, first, last, last_value = row
        merged.append(
            (
                key,
                level,
                bucket,
                old[3] + count,
                old[4] + total,
                min(old[5], low),
                max(old[6], high),
                min(old[7], first),
                max(old[8], last),
                last_value if last >= old[8] else old[9],
            )
        )
    return new, merged


_POINT_COLUMNS = "job_id, key, step, seq, value, time"
_POINT_TYPES = ["uuid", "text", "int8", "int4", "float8", "timestamptz"]


# Replaces a stored bucket by the row given, which already has the stored one merged in.
_UPSERT = """ON CONFLICT (job_id, key, level, bucket) DO UPDATE SET
    count = excluded.count, total = excluded.total, min_value = excluded.min_value,
    max_value = excluded.max_value, first_step = excluded.first_step, last_step = excluded.last_step,
    last_value = excluded.last_value"""


def _store_postgresql(
    cursor: Any,
    connection: Any,
    job_value: Any,
    ordered: Mapping[str, Series],
    seqs: Mapping[str, list[int]],
    stored: dict[tuple[str, int, int], Rollup],
) -> None:
    """COPY … FROM STDIN in binary, the fastest way in (no statement text, no parameter limit): the
    points, then the new buckets; the merged buckets by INSERT … ON CONFLICT DO UPDATE."""
    points_table = connection.ops.quote_name(MetricPoint._meta.db_table)
    with _copy_in(
        cursor, f"COPY {points_table} ({_POINT_COLUMNS}) FROM STDIN (FORMAT BINARY)", _POINT_TYPES
    ) as write:
        for key, (steps, values, times) in ordered.items():
            for row in zip(repeat(job_value), repeat(key), steps, seqs[key], values, times):
                write(row)
        # The server is still taking in the points when the last one is sent (writing them is the
        # faster side): the rollups are computed meanwhile.
        new, merged = _merge(_rows(_levels(ordered)), stored)
    if new:  # none, most often, for the few points of a running job
        buckets_table = connection.ops.quote_name(MetricBucket._meta.db_table)
        with _copy_in(
            cursor, f"COPY {buckets_table} ({_BUCKET_COLUMNS}) FROM STDIN (FORMAT BINARY)", _BUCKET_TYPES
        ) as write:
            for row in new:
                write((job_value, *row))
    if merged:
        _upsert_merged_postgresql(cursor, connection, job_value, merged)


def _upsert_merged_postgresql(cursor: Any, connection: Any, job_value: Any, rows: list[Rollup]) -> None:
    """Stored buckets replaced by their merged rows, given as one array per column: a statement of the
    same size whatever the number of rows, quick to plan, whose conflict check finds each row through
    the unique index whatever the table's statistics."""
    table = connection.ops.quote_name(MetricBucket._meta.db_table)
    arrays = ", ".join(f"%s::{kind}[]" for kind in _BUCKET_TYPES[1:])
    cursor.execute(
        f"INSERT INTO {table} ({_BUCKET_COLUMNS}) SELECT %s, * FROM unnest({arrays}) {_UPSERT}",  # noqa: S608 - names are ours
        [job_value, *map(list, zip(*rows, strict=True))],
    )


@contextmanager
def _copy_in(cursor: Any, sql: str, types: list[str]) -> Iterator[Callable[[Sequence[Any]], None]]:
    """COPY … FROM STDIN in binary through psycopg, giving the function that writes one row (Django has
    no COPY; its debug cursor, in tests and with DEBUG, records the statement like any other)."""
    logged = cursor.debug_sql(sql) if isinstance(cursor, CursorDebugWrapper) else nullcontext()
    with logged, cursor.cursor.copy(sql) as copy:
        copy.set_types(types)
        yield copy.write_row


def _store_sqlite(
    cursor: Any,
    connection: Any,
    job_value: Any,
    ordered: Mapping[str, Series],
    seqs: Mapping[str, list[int]],
    stored: dict[tuple[str, int, int], Rollup],
) -> None:
    """The points, then every bucket, new or merged, by INSERT … ON CONFLICT DO UPDATE (as fast there
    as a plain INSERT); each in multi-row statements run by executemany."""
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    # A history row's points share one timestamp: each is converted once (Django stores it as text).
    times = set(chain.from_iterable(series.times for series in ordered.values()))
    texts = {time: _sqlite_datetime(connection, time) for time in times}
    points = chain.from_iterable(
        zip(repeat(job_value), repeat(key), steps, seqs[key], values, map(texts.__getitem__, series_times))
        for key, (steps, values, series_times) in ordered.items()
    )
    _executemany_rows(
        cursor,
        connection,
        f"INSERT INTO {table} ({_POINT_COLUMNS}) VALUES {{rows}}",  # noqa: S608 - names are ours
        list(chain.from_iterable(points)),
        6,
    )
    new, merged = _merge(_rows(_levels(ordered)), stored)
    buckets = connection.ops.quote_name(MetricBucket._meta.db_table)
    _executemany_rows(
        cursor,
        connection,
        f"INSERT INTO {buckets} ({_BUCKET_COLUMNS}) VALUES {{rows}} {_UPSERT}",  # noqa: S608 - names are ours
        list(chain.from_iterable(map(add, repeat((job_value,)), new + merged))),
        11,
    )


def _sqlite_datetime(connection: Any, value: dt.datetime | None) -> str | None:
    """What DateTimeField sends SQLite: the time in the connection's zone, naive, as ISO text."""
    if value is None:
        return None
    if value.tzinfo is not None:  # always, from ingestion: the short way to the same text
        return str(value.astimezone(connection.timezone).replace(tzinfo=None))
    return cast(str, connection.ops.adapt_datetimefield_value(value))


def _executemany_rows(cursor: Any, connection: Any, template: str, flat: list[Any], width: int) -> None:
    """Two executemany calls, whatever the number of rows: `template` with its {rows} as many
    placeholder rows as the parameter limit allows (one statement compiled, one loop in C), then the
    rows left over one by one (a short statement, compiled once too)."""
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
    width = ROLLUP_BASE**level
    out["width"] = width
    if level < ROLLUP_STORED_FROM:
        # Whole buckets, as stored ones would be: the edge buckets may reach past the range.
        raw = (
            MetricPoint.objects.filter(
                job_id=job_id, key=key, step__gte=lo // width * width, step__lte=(hi // width + 1) * width - 1
            )
            .order_by("step", "seq")
            .values_list("step", "value")
        )
        if level == 0:
            _append_raw(out, raw)
        else:
            _append_buckets(out, raw, width)
        return out
    rows = (
        MetricBucket.objects.filter(
            job_id=job_id, key=key, level=level, bucket__gte=lo // width, bucket__lte=hi // width
        )
        .order_by("bucket")
        .values_list("first_step", "total", "count", "min_value", "max_value")
    )
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


def _append_buckets(out: dict[str, Any], raw: Iterable[tuple[int, float]], width: int) -> None:
    """Buckets of `width` steps from raw points in step order, aggregated as a stored level is
    (`_from_raw`): the first step, the mean, the minimum and the maximum."""
    pairs = list(raw)
    if not pairs:
        return
    steps, values = (list(column) for column in zip(*pairs, strict=True))
    _buckets, counts, totals, lows, highs, firsts, _lasts, _last_values = _from_raw(steps, values, width)
    out["steps"], out["values"], out["mins"], out["maxs"] = (
        firsts,
        list(map(truediv, totals, counts)),
        lows,
        highs,
    )


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
    return MetricPoint.objects.filter(job_id=job_id, key=key).order_by("-step", "-seq").first()
