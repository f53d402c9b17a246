"""Ingestion from run files and the cloud: exactly once across pieces, crashes and concurrent workers;
the worker step."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext

from metrics import cloud, ingest, keys, store, wandb_file
from metrics.models import MetricBucket, MetricCursor, MetricPoint
from metrics.points import RunState, points_of
from metrics.progress import job_progress
from scheduler.models import Job, JobEvent
from scheduler.steps import CycleStats, Poll
from tests.metrics.conftest import LONG_RUN_STEPS, LocalRunFiles, MakeJob
from tests.metrics.reference import (
    assert_same_buckets,
    assert_same_series,
    by_key,
    reference_buckets,
    reference_series,
    stored_buckets,
)

KEYS_PER_ROW = 6  # loss, learning rate, grad norm, epoch, global step, tokens seen


def expected_points(rows: int = 300) -> int:
    return rows * KEYS_PER_ROW + (rows - 1)  # + the derived tokens/s from the second row on


def test_it_stores_a_whole_run_and_then_reads_once_per_cycle(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    path = files.place(job, run_file)

    assert ingest.ingest_job(job, files) == expected_points()

    cursor = MetricCursor.objects.get(job=job)
    assert (cursor.path, cursor.offset, cursor.last_step, cursor.exit_code) == (path, len(run_file), 300, 0)
    assert MetricPoint.objects.filter(job=job, key="train/loss").count() == 300
    assert store.latest(job.pk, "train/loss").step == 300  # type: ignore[union-attr]
    reads, listings = files.reads, files.listings
    assert ingest.ingest_job(job, files) == 0
    assert (files.reads - reads, files.listings - listings) == (1, 0)  # nothing new: one read, no listing


def test_a_file_read_while_it_grows_stores_each_point_once(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    path = files.place(job, run_file)
    rng = random.Random(7)  # noqa: S311 - reproducible cut points, not security
    for end in [*sorted(rng.sample(range(len(run_file)), 25)), len(run_file)]:
        files.visible[path] = end
        ingest.ingest_job(job, files)

    assert MetricPoint.objects.filter(job=job).count() == expected_points()
    duplicated = (
        MetricPoint.objects.filter(job=job).values("key", "step").annotate(n=Count("seq")).filter(n__gt=1)
    )
    assert not duplicated.exists()


def test_small_reads_still_progress_through_large_records(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes, settings: Any
) -> None:
    settings.METRICS_READ_BYTES = 64  # smaller than most records: each read grows until one fits
    job = make_job()
    files.place(job, run_file)
    total = 0
    for _ in range(len(run_file) // 64 + 10):
        total += ingest.ingest_job(job, files)
    assert total == expected_points()


def test_a_crash_before_commit_stores_nothing_and_the_next_cycle_stores_all(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job()
    files.place(job, run_file)
    real = store.add_points

    def crash(*args: Any) -> int:
        real(*args)
        raise RuntimeError("worker killed")

    monkeypatch.setattr(store, "add_points", crash)
    with pytest.raises(RuntimeError):
        ingest.ingest_job(job, files)
    assert MetricCursor.objects.get(job=job).offset == 0
    assert not MetricPoint.objects.filter(job=job).exists()

    monkeypatch.setattr(store, "add_points", real)
    assert ingest.ingest_job(job, files) == expected_points()


def snapshot(job: Job) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[float]]:
    """A job's points (with their times) and rollups, in order; rollup totals apart, since float sums
    merged from other chunk boundaries may differ in the last bits."""
    points = list(
        MetricPoint.objects.filter(job=job)
        .order_by("key", "step", "seq")
        .values_list("key", "step", "value", "time")
    )
    buckets = MetricBucket.objects.filter(job=job).order_by("key", "level", "bucket")
    fields = (
        "key",
        "level",
        "bucket",
        "count",
        "min_value",
        "max_value",
        "first_step",
        "last_step",
        "last_value",
    )
    return list(buckets.values_list(*fields)), points, list(buckets.values_list("total", flat=True))


def test_a_run_that_is_behind_is_whole_after_one_call_when_time_allows(
    make_job: MakeJob, files: LocalRunFiles, long_run_file: bytes, settings: Any
) -> None:
    settings.METRICS_INGEST_SECONDS_PER_CYCLE = 600
    job = make_job()
    files.place(job, long_run_file)

    assert ingest.ingest_job(job, files) == expected_points(LONG_RUN_STEPS)

    mib = 1 << 20
    assert files.read_sizes == [4 * mib, 8 * mib, 16 * mib]  # 13 MB: chunks that grow, the last one short
    cursor = MetricCursor.objects.get(job=job)
    assert (cursor.offset, cursor.last_step, cursor.points) == (
        len(long_run_file),
        LONG_RUN_STEPS,
        expected_points(LONG_RUN_STEPS),
    )
    for key in ("train/loss", keys.TOKENS_PER_S_KEY):  # every step once: no gap, no duplicate
        steps = MetricPoint.objects.filter(job=job, key=key).order_by("step").values_list("step", flat=True)
        assert list(steps) == list(range(1 if key == "train/loss" else 2, LONG_RUN_STEPS + 1))
    reads = files.reads
    assert ingest.ingest_job(job, files) == 0
    assert files.reads - reads == 1  # caught up: one read per cycle again


def test_with_no_time_left_each_call_reads_one_chunk_and_stores_the_same_in_the_end(
    make_job: MakeJob, files: LocalRunFiles, long_run_file: bytes, settings: Any
) -> None:
    settings.METRICS_INGEST_SECONDS_PER_CYCLE = 600
    whole = make_job()
    files.place(whole, long_run_file)
    ingest.ingest_job(whole, files)

    settings.METRICS_INGEST_SECONDS_PER_CYCLE = 0
    settings.METRICS_READ_BYTES = 1 << 20
    job = make_job()
    files.place(job, long_run_file)
    reads = files.reads
    calls = 0
    while ingest.ingest_job(job, files):
        calls += 1
        assert files.reads - reads == calls  # one read per call: the budget is spent
    assert calls >= len(long_run_file) // (1 << 20)
    assert set(files.read_sizes[-calls:]) == {1 << 20}  # 1 MiB at a time: no chunk grew

    got, expected = snapshot(job), snapshot(whole)
    assert got[0] == expected[0]  # the same buckets: counts, extremes, first and last steps and values
    assert got[1] == expected[1]  # the same points, each once
    assert got[2] == pytest.approx(expected[2])


def test_a_run_read_in_odd_chunks_has_the_buckets_and_charts_of_all_its_points_at_once(
    make_job: MakeJob, files: LocalRunFiles, long_run_file: bytes, settings: Any
) -> None:
    settings.METRICS_INGEST_SECONDS_PER_CYCLE = 0  # one read per call
    settings.METRICS_READ_BYTES = 777_777  # chunks that end anywhere in a bucket of any level
    job = make_job()
    files.place(job, long_run_file)
    calls = 0
    while ingest.ingest_job(job, files):
        calls += 1
    assert calls > len(long_run_file) // 777_777

    points, _ = points_of(wandb_file.parse(long_run_file).events, RunState(), keys.tokens_per_step(job))
    read = [(p.key, p.step, p.value) for p in points]
    assert len(read) == expected_points(LONG_RUN_STEPS)
    assert_same_buckets(stored_buckets(job.pk), reference_buckets(read))
    pairs = by_key(read)["train/loss"]
    for lo, hi, width in [(777, 2776, 1), (4321, 11_321, 4), (1, LONG_RUN_STEPS, 16), (1, 1_000_000, 1024)]:
        out = store.series(job.pk, "train/loss", lo, hi)
        assert out["width"] == width  # widths 1 and 4 from the raw points, the others stored
        assert_same_series(out, reference_series(pairs, lo, hi, width))


def test_a_visit_reads_on_only_while_its_time_lasts_and_every_job_gets_a_read(
    make_job: MakeJob,
    files: LocalRunFiles,
    long_run_file: bytes,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.METRICS_READ_BYTES = 1 << 20
    settings.METRICS_INGEST_SECONDS_PER_CYCLE = 2.5
    clock = [0.0]  # a clock that moves one second per MiB read: a slow cluster, whatever this machine
    real_read = files.read_from

    def slow_read(path: str, offset: int, max_bytes: int = 1 << 20) -> bytes:
        data = real_read(path, offset, max_bytes)
        clock[0] += len(data) / (1 << 20)
        return data

    monkeypatch.setattr(files, "read_from", slow_read)
    monkeypatch.setattr(ingest, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    first, second = make_job(), make_job()
    files.place(first, long_run_file)
    files.place(second, long_run_file)
    poll = Poll(first.cluster, files, "test", CycleStats("lab"))  # type: ignore[arg-type]

    ingest.ingest_cluster(poll)

    # The job read first: 1 MiB in 1 s, then what the 1.5 s left allow at that rate; the other one still
    # gets its first read, and nothing more, once the 2.5 s are spent.
    assert files.read_sizes[0] == files.read_sizes[2] == 1 << 20
    assert 1.4 * (1 << 20) < files.read_sizes[1] < 1.5 * (1 << 20)
    assert len(files.read_sizes) == 3
    less, more = sorted(MetricCursor.objects.get(job=job).offset for job in (first, second))
    assert 0 < less < 1 << 20 < 2 << 20 < more


def test_a_crash_in_the_middle_of_a_catch_up_keeps_the_chunks_stored_before_it(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.METRICS_INGEST_SECONDS_PER_CYCLE = 600
    settings.METRICS_READ_BYTES = 16 << 10  # the 300-step file in chunks of 16, 32, 64 … KiB
    job = make_job()
    files.place(job, run_file)
    real, calls = store.add_points, []

    def crash_on_the_third_chunk(*args: Any) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return real(*args)

    monkeypatch.setattr(store, "add_points", crash_on_the_third_chunk)
    with pytest.raises(RuntimeError):
        ingest.ingest_job(job, files)

    cursor = MetricCursor.objects.get(job=job)
    assert 0 < cursor.offset < len(run_file)
    rows = sum(
        isinstance(e, wandb_file.HistoryRow) for e in wandb_file.parse(run_file[: cursor.offset]).events
    )
    assert MetricPoint.objects.filter(job=job).count() == cursor.points == expected_points(rows)
    monkeypatch.setattr(store, "add_points", real)
    ingest.ingest_job(job, files)
    assert MetricPoint.objects.filter(job=job).count() == expected_points()
    duplicated = (
        MetricPoint.objects.filter(job=job).values("key", "step").annotate(n=Count("seq")).filter(n__gt=1)
    )
    assert not duplicated.exists()


def test_a_chunk_costs_the_same_few_queries_whatever_its_size(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    small, large = make_job(), make_job()
    files.visible[files.place(small, run_file)] = wandb_file.parse(run_file[:5000]).offset  # a few rows
    files.place(large, run_file)

    with CaptureQueriesContext(connection) as few:
        assert ingest.ingest_job(small, files) < 50
    with CaptureQueriesContext(connection) as many:
        assert ingest.ingest_job(large, files) == expected_points()

    # The run's loss spike at step 150 is one alert: one insert more (metrics.watch).
    alerts = JobEvent.objects.filter(job=large, kind=JobEvent.Kind.LOSS_ALERT).count()
    assert alerts == 1
    # The cursor (made, path, moved), a few per table, the loss watch's two reads.
    assert len(many) - alerts == len(few) <= 16


def test_a_second_worker_with_a_stale_cursor_stores_nothing(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    path = files.place(job, run_file)
    stale = MetricCursor.objects.create(job=job, path=path)  # what both workers read

    assert ingest.ingest_job(job, files) == expected_points()  # the first worker
    rows = wandb_file.parse(run_file).events
    assert ingest.store_events(job, stale, rows, len(run_file)) == 0  # the second one, too late
    assert MetricPoint.objects.filter(job=job).count() == expected_points()


def test_progress_from_the_stored_points_and_the_run_config(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    files.place(job, run_file)
    assert job_progress(job) is None
    half = wandb_file.parse(run_file[: len(run_file) // 2]).offset
    files.visible[files.place(job, run_file)] = half
    ingest.ingest_job(job, files)

    progress = job_progress(job)

    assert progress is not None
    assert 0 < progress.step < 300 and progress.max_steps == 300
    assert progress.fraction == pytest.approx(progress.step / 300)
    assert progress.tokens_seen == progress.step * 4096
    assert progress.tokens_per_s is not None and progress.tokens_per_s > 0
    assert progress.eta_seconds is not None and progress.eta_seconds >= 0
    assert MetricPoint.objects.filter(job=job, key=keys.TOKENS_PER_S_KEY).count() == progress.step - 1


def test_the_worker_step_reads_running_jobs_and_finishes_ended_ones(
    make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    running = make_job()
    ended = make_job(state=Job.State.COMPLETED)
    silent = make_job(state=Job.State.FAILED)  # never wrote a run
    pending = make_job(state=Job.State.PENDING, started_at=None)
    files.place(running, run_file)
    files.place(ended, run_file)

    poll = Poll(running.cluster, files, "test", CycleStats("lab"))  # type: ignore[arg-type]
    ingest.ingest_cluster(poll)

    assert MetricPoint.objects.filter(job=running).count() == expected_points()
    assert MetricPoint.objects.filter(job=ended).count() == expected_points()
    assert not MetricCursor.objects.filter(job=pending).exists()
    assert MetricCursor.objects.get(job=silent).final
    assert not MetricCursor.objects.get(job=ended).final  # once more, to see nothing new
    ingest.ingest_cluster(poll)
    assert MetricCursor.objects.get(job=ended).final
    assert not MetricCursor.objects.get(job=running).final
    reads = files.reads
    ingest.ingest_cluster(poll)
    assert files.reads - reads == 1  # only the running job is read


def test_the_newest_run_directory_is_chosen(make_job: MakeJob, files: LocalRunFiles, run_file: bytes) -> None:
    job = make_job()
    files.place(job, b"old")
    newer = files.root / str(job.id) / "wandb" / f"run-20240622_080000-{job.id}"
    newer.mkdir(parents=True)
    (newer / f"run-{job.id}.wandb").write_bytes(run_file)
    (files.root / str(job.id) / "wandb" / "offline-run-20240623_000000-someoneelse").mkdir()

    path = wandb_file.find_run_file(files, job.run_dir, job.id)

    assert path is not None and path.endswith(f"/run-20240622_080000-{job.id}/run-{job.id}.wandb")


class FakeCloudRun:
    """Stands in for wandb.apis.public.Run (W&B's servers cannot be reached from here): the same
    `scan_history(keys, page_size, min_step, max_step)` signature, rows as dicts with _step."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.calls: list[tuple[Any, Any]] = []

    def scan_history(
        self, keys: Any = None, page_size: int = 1000, min_step: Any = None, max_step: Any = None
    ) -> Any:
        self.calls.append((min_step, max_step))
        return iter(r for r in self.rows if min_step <= r["_step"] < max_step)


class FakeCloudApi:
    def __init__(self, run: FakeCloudRun) -> None:
        self.fake_run = run
        self.paths: list[str] = []

    def run(self, path: str = "") -> FakeCloudRun:
        self.paths.append(path)
        return self.fake_run


def test_a_cloud_only_run_is_read_through_the_public_api_from_the_cursor(
    make_job: MakeJob, files: LocalRunFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        {"_step": i, "_timestamp": 1.7e9 + i, "train/loss": 2.0 - i / 100, "train/global_step": i + 1}
        for i in range(40)
    ]
    fake = FakeCloudApi(FakeCloudRun(rows[:25]))
    monkeypatch.setattr(cloud, "default_api", lambda: fake)
    job = make_job(parameters={"config": {"wandb": {"entity": "tanuki", "project": "sft"}}})
    assert not cloud.available(job)  # no API key configured: the cloud is not asked
    assert ingest.ingest_job(job, files) == 0
    assert fake.paths == []

    monkeypatch.setenv("WANDB_API_KEY", "test-key")
    assert ingest.ingest_job(job, files) == 25 * 2
    fake.fake_run.rows = rows
    assert ingest.ingest_job(job, files) == 15 * 2

    assert fake.paths == [f"tanuki/sft/{job.id}"] * 2
    assert [c[0] for c in fake.fake_run.calls] == [0, 25]
    cursor = MetricCursor.objects.get(job=job)
    assert (cursor.source, cursor.offset, cursor.last_step) == (MetricCursor.Source.CLOUD, 40, 40)
    assert MetricPoint.objects.filter(job=job, key="train/loss").count() == 40


def test_new_points_are_pushed_after_commit_and_a_backlog_asks_for_a_refresh(
    make_job: MakeJob,
    files: LocalRunFiles,
    run_file: bytes,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from metrics import push

    sent: list[dict[str, Any]] = []
    monkeypatch.setattr(push, "push_job", lambda job, **kw: transaction.on_commit(lambda: sent.append(kw)))
    job = make_job()
    path = files.place(job, run_file)
    files.visible[path] = wandb_file.parse(run_file[:3000]).offset
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ingest.ingest_job(job, files)
    assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    (message,) = sent
    assert message["points"]["train/loss"][0][0] == 1  # (step, value) pairs by key
    assert sum(len(v) for v in message["points"].values()) == MetricPoint.objects.filter(job=job).count()

    monkeypatch.setattr(ingest, "PUSH_MAX_POINTS", 10)
    files.visible[path] = len(run_file)
    with django_capture_on_commit_callbacks(execute=True):
        ingest.ingest_job(job, files)
    assert sent[-1] == {"points": {}, "refresh": True}


# --- the sources and the points, without the database ------------------------------------------------


def test_the_cloud_source_returns_rows_from_a_step_and_the_next_step() -> None:
    rows = [
        {"_step": i, "_timestamp": 1.7e9 + i, "train/loss": 1.0, "flag": True, "_runtime": 3}
        for i in range(5)
    ]
    fake = FakeCloudApi(FakeCloudRun(rows))
    got, next_step = cloud.read_history("tanuki/sft/run", 2, api=fake)
    assert [r.step for r in got] == [2, 3, 4] and next_step == 5
    assert got[0] == wandb_file.HistoryRow(step=2, values={"train/loss": 1.0}, timestamp=1.7e9 + 2)
    assert cloud.read_history("tanuki/sft/run", 5, api=fake) == ([], 5)  # nothing new


def test_points_read_in_pieces_are_the_points_read_at_once(run_file: bytes) -> None:
    events = wandb_file.parse(run_file).events
    whole, end = points_of(events, RunState(), tokens_per_step=None)
    first, middle = points_of(events[:100], RunState())
    second, after = points_of(events[100:], middle)
    assert store.Points.of([*first, *second]) == whole and after == end
    assert len(whole) == expected_points() and end.last_step == 300 and end.exit_code == 0
    assert sum(p.key == keys.TOKENS_PER_S_KEY for p in whole) == 299


def test_tokens_per_step_stands_in_for_tokens_seen() -> None:
    rows = [
        wandb_file.HistoryRow(step=i, values={keys.STEP_KEY: i + 1}, timestamp=100.0 + 2 * i)
        for i in range(3)
    ]
    points, state = points_of(rows, RunState(), tokens_per_step=4096)
    rates = [p.value for p in points if p.key == keys.TOKENS_PER_S_KEY]
    assert rates == [2048.0, 2048.0] and state.last_tokens == 3 * 4096
