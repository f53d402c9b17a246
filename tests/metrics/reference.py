"""Rollup buckets and chart series computed the plain way, from all the points at once, to check what
ingestion stored (in chunks, merged with what was there) and what `store.series` reads against."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from itertools import groupby
from typing import Any, cast

import pytest

from metrics.models import ROLLUP_BASE, ROLLUP_LEVELS, ROLLUP_STORED_FROM, MetricBucket

# (key, level, bucket) -> (count, total, min, max, first step, last step, last value)
Bucket = tuple[int, float, float, float, int, int, float]
Buckets = dict[tuple[str, int, int], Bucket]


def by_key(points: Iterable[tuple[str, int, float]]) -> dict[str, list[tuple[int, float]]]:
    """Each key's (step, value) pairs in step order; of two values at one step, the later one read
    comes last (a resumed run logs some steps again)."""
    out: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for key, step, value in points:
        out[key].append((step, value))
    for pairs in out.values():
        pairs.sort(key=lambda pair: pair[0])
    return out


def reference_buckets(
    points: Iterable[tuple[str, int, float]],
    levels: Iterable[int] = range(ROLLUP_STORED_FROM, ROLLUP_LEVELS + 1),
) -> Buckets:
    """The buckets of the points, given in the order read, at these levels (default: those stored)."""
    out: Buckets = {}
    levels = list(levels)
    for key, pairs in by_key(points).items():
        for level in levels:
            width = ROLLUP_BASE**level
            for bucket, group in groupby(pairs, key=lambda pair: pair[0] // width):
                members = list(group)
                values = [value for _, value in members]
                out[key, level, bucket] = (
                    len(members),
                    math.fsum(values),
                    min(values),
                    max(values),
                    members[0][0],
                    members[-1][0],
                    members[-1][1],
                )
    return out


def stored_buckets(job_id: Any) -> Buckets:
    rows = MetricBucket.objects.filter(job_id=job_id).values_list(
        "key",
        "level",
        "bucket",
        "count",
        "total",
        "min_value",
        "max_value",
        "first_step",
        "last_step",
        "last_value",
    )
    return {(key, level, bucket): cast(Bucket, tuple(rest)) for key, level, bucket, *rest in rows}


def assert_same_buckets(got: Buckets, expected: Buckets) -> None:
    """The same buckets with the same counts, extremes, first and last steps and last values; totals
    apart, since sums merged at other chunk boundaries may differ in the last bits."""
    assert sorted(got) == sorted(expected)
    for index, (bucket, want) in enumerate(sorted(expected.items())):
        have = got[bucket]
        assert (have[0], *have[2:]) == (want[0], *want[2:]), (index, bucket)
        scale = want[0] * max(1.0, abs(want[2]), abs(want[3]))  # what rounding in another order can move
        assert have[1] == pytest.approx(want[1], rel=1e-12, abs=1e-12 * scale), bucket


def reference_series(pairs: list[tuple[int, float]], lo: int, hi: int, width: int) -> dict[str, list[Any]]:
    """What a chart of buckets of `width` steps over lo..hi shows: the buckets that overlap the range,
    whole, each with its first step, mean, minimum and maximum."""
    out: dict[str, list[Any]] = {"steps": [], "values": [], "mins": [], "maxs": []}
    inside = [pair for pair in pairs if lo // width <= pair[0] // width <= hi // width]
    for _, group in groupby(inside, key=lambda pair: pair[0] // width):
        members = list(group)
        values = [value for _, value in members]
        out["steps"].append(members[0][0])
        out["values"].append(math.fsum(values) / len(values))
        out["mins"].append(min(values))
        out["maxs"].append(max(values))
    return out


def assert_same_series(got: dict[str, Any], expected: dict[str, list[Any]]) -> None:
    assert (got["steps"], got["mins"], got["maxs"]) == (expected["steps"], expected["mins"], expected["maxs"])
    for mean, want, low, high in zip(
        got["values"], expected["values"], expected["mins"], expected["maxs"], strict=True
    ):
        assert mean == pytest.approx(want, rel=1e-12, abs=1e-12 * max(1.0, abs(low), abs(high)))
