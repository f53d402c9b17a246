"""Ingestion from run files and the cloud: exactly once across pieces, crashes and concurrent workers;
the worker step."""

from __future__ import annotations

import random
from typing import Any

import pytest
from django.db import transaction
from django.db.models import Count

from metrics import cloud, ingest, keys, store, wandb_file
from metrics.models import MetricCursor, MetricPoint
from metrics.points import RunState, points_of
from metrics.progress import job_progress
from scheduler.models import Job
from scheduler.steps import CycleStats, Poll
from tests.metrics.conftest import LocalRunFiles, MakeJob

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
        MetricPoint.objects.filter(job=job).values("key", "step").annotate(n=Count("id")).filter(n__gt=1)
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
    assert first + second == whole and after == end
    assert end.last_step == 300 and end.exit_code == 0
    assert sum(p.key == keys.TOKENS_PER_S_KEY for p in whole) == 299


def test_tokens_per_step_stands_in_for_tokens_seen() -> None:
    rows = [
        wandb_file.HistoryRow(step=i, values={keys.STEP_KEY: i + 1}, timestamp=100.0 + 2 * i)
        for i in range(3)
    ]
    points, state = points_of(rows, RunState(), tokens_per_step=4096)
    rates = [p.value for p in points if p.key == keys.TOKENS_PER_S_KEY]
    assert rates == [2048.0, 2048.0] and state.last_tokens == 3 * 4096
