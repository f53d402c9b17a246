"""Storage and downsampling: rollups maintained at ingest give every bucket its true min and max."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metrics import store
from metrics.models import ROLLUP_BASE, ROLLUP_STORED_FROM, MetricBucket, MetricPoint
from tests.metrics.conftest import MakeJob
from tests.metrics.reference import (
    assert_same_buckets,
    assert_same_series,
    by_key,
    reference_buckets,
    reference_series,
    stored_buckets,
)

values = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@st.composite
def series_and_query(draw: st.DrawFn) -> tuple[list[tuple[int, float]], list[int], int, int, int]:
    steps = sorted(draw(st.sets(st.integers(min_value=0, max_value=5000), min_size=1, max_size=300)))
    points = [(step, draw(values)) for step in steps]
    splits = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(points)), max_size=4)))
    lo = draw(st.integers(min_value=0, max_value=5000))
    hi = draw(st.integers(min_value=lo, max_value=5000))
    wanted = draw(st.integers(min_value=2, max_value=60))
    return points, splits, lo, hi, wanted


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=series_and_query())
def test_every_bucket_keeps_the_true_min_and_max(
    make_job: MakeJob, case: tuple[list[tuple[int, float]], list[int], int, int, int]
) -> None:
    raw, splits, lo, hi, wanted = case
    job = make_job()
    # Ingested in several batches, as cycles would.
    for start, end in zip([0, *splits], [*splits, len(raw)], strict=True):
        store.add_points(job.pk, [store.Point("train/loss", s, v) for s, v in raw[start:end]])

    out = store.series(job.pk, "train/loss", lo, hi, wanted)

    width = out["width"]
    assert len(out["steps"]) <= wanted
    in_range = [v for s, v in raw if lo <= s <= hi]
    if in_range:
        assert out["steps"]
    for step, mean, low, high in zip(out["steps"], out["values"], out["mins"], out["maxs"], strict=True):
        first = step // width * width
        assert first <= hi and first + width > lo  # edge buckets may reach past the range, never miss it
        members = [v for s, v in raw if first <= s < first + width]
        assert (low, high) == (min(members), max(members))
        assert low <= mean <= high or abs(mean - low) < 1e-6 * max(1.0, abs(low))
        assert step == min(s for s, _ in raw if first <= s < first + width)
    if in_range:
        # A single spike is always there: the highest and lowest point of the range are never lost.
        assert max(out["maxs"]) >= max(in_range)
        assert min(out["mins"]) <= min(in_range)


@st.composite
def batches_in_any_order(draw: st.DrawFn) -> list[list[tuple[str, int, float]]]:
    """Points of two keys as a trainer logs them: runs of consecutive steps, where a run that starts
    before the previous one ended is a resume that logs some steps again. Stored in batches cut
    anywhere, which then come in any order: every stored bucket a batch falls into is merged, not only
    the one the previous batch ended in."""
    start = draw(st.integers(min_value=0, max_value=50_000))
    runs = []
    for shift, length in draw(
        st.lists(
            st.tuples(st.integers(min_value=-150, max_value=5000), st.integers(min_value=1, max_value=150)),
            min_size=1,
            max_size=4,
        )
    ):
        start = max(0, start + shift)  # after the previous run: a gap, or a resume from an earlier step
        runs.append((start, length))
        start += length
    points = [
        (key, step, draw(values))
        for start, length in runs
        for step in range(start, start + length)
        for key in draw(st.sampled_from([["a"], ["b"], ["a", "b"]]))
    ]
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(points)), max_size=5)))
    batches = [points[start:end] for start, end in zip([0, *cuts], [*cuts, len(points)], strict=True)]
    return draw(st.permutations(batches))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches_in_any_order())
def test_buckets_stored_batch_by_batch_are_those_of_all_the_points_at_once(
    make_job: MakeJob, batches: list[list[tuple[str, int, float]]]
) -> None:
    job = make_job()
    for batch in batches:
        store.add_points(job.pk, [store.Point(*point) for point in batch])

    read = [point for batch in batches for point in batch]
    assert_same_buckets(stored_buckets(job.pk), reference_buckets(read))
    ranges = [(0, 1999, 1), (0, 7999, 4), (5000, 35_000, 16), (0, 70_000, 64), (0, 500_000, 256)]
    for key, pairs in by_key(read).items():
        for lo, hi, width in ranges:  # widths 1 and 4 from the raw points, the others stored
            out = store.series(job.pk, key, lo, hi)
            assert out["width"] == width
            assert_same_series(out, reference_series(pairs, lo, hi, width))
        last = store.latest(job.pk, key)
        assert last is not None and (last.step, last.value) == pairs[-1]  # the later of two at one step
    assert store.keys([job.pk]) == sorted(by_key(read))


def test_a_spike_survives_a_2000_point_chart_of_a_long_series(make_job: MakeJob) -> None:
    job = make_job()
    raw = [store.Point("train/loss", step, 2.0) for step in range(20_000)]
    raw[13_337] = store.Point("train/loss", 13_337, 99.0)
    store.add_points(job.pk, raw)

    out = store.series(job.pk, "train/loss")

    assert out["width"] == ROLLUP_BASE**2  # 20,000 steps in buckets of 16: 1,250 buckets
    assert len(out["steps"]) == 1250
    assert 99.0 in out["maxs"]
    assert out["values"].count(2.0) == len(out["values"]) - 1


def test_a_narrow_range_reads_raw_points(make_job: MakeJob) -> None:
    job = make_job()
    store.add_points(job.pk, [store.Point("train/loss", s, float(s)) for s in range(10_000)])

    out = store.series(job.pk, "train/loss", 1000, 1999)

    assert out["width"] == 1
    assert out["steps"] == list(range(1000, 2000))
    assert out["values"] == out["mins"] == out["maxs"] == [float(s) for s in range(1000, 2000)]


def test_rollups_hold_one_row_per_bucket_and_stored_level(make_job: MakeJob) -> None:
    job = make_job()
    store.add_points(job.pk, [store.Point("k", s, 1.0) for s in range(0, 100)])
    store.add_points(job.pk, [store.Point("k", s, 3.0) for s in range(100, 200)])

    assert not MetricBucket.objects.filter(job=job, level__lt=ROLLUP_STORED_FROM).exists()
    assert MetricBucket.objects.filter(job=job, key="k", level=2).count() == 13  # 200 steps in buckets of 16
    straddling = MetricBucket.objects.get(job=job, key="k", level=2, bucket=6)  # steps 96..111, both batches
    assert (straddling.count, straddling.total, straddling.min_value, straddling.max_value) == (
        16,
        40.0,
        1.0,
        3.0,
    )
    top = MetricBucket.objects.get(job=job, key="k", level=12)
    assert (top.count, top.min_value, top.max_value, top.first_step, top.last_step) == (200, 1.0, 3.0, 0, 199)
    assert top.total == 100 * 1.0 + 100 * 3.0
    assert MetricPoint.objects.filter(job=job).count() == 200
    assert store.keys([job.pk]) == ["k"]


def test_storing_points_takes_the_same_few_statements_whatever_their_number(make_job: MakeJob) -> None:
    counts = []
    for size in (10, 1_000, 50_000):
        job = make_job()
        points = [store.Point(f"k{s % 7}", s // 7, float(s)) for s in range(size)]
        with CaptureQueriesContext(connection) as queries:
            store.add_points(job.pk, points)
        counts.append(len(queries))
        assert MetricPoint.objects.filter(job=job).count() == size

    assert counts[0] == counts[1] == counts[2] <= 5  # O(1) statements, not O(points)


def test_an_unknown_series_is_empty(make_job: MakeJob) -> None:
    out = store.series(make_job().pk, "nothing")
    assert out["steps"] == [] and out["width"] == 1
