"""Metrics benchmarks: ingest speed, chart query cost against series length, live latency.

    .venv/bin/python bench/metrics_bench.py                 # SQLite
    .venv/bin/python bench/metrics_bench.py --postgres URL  # PostgreSQL (a scratch database
                                                            # metrics_bench is created and dropped)
    DATABASE_URL=postgres://… .venv/bin/python bench/metrics_bench.py   # the same as --postgres
    … --ingest-only                                         # part 1 only

1. Ingest: a real W&B offline run of 20,000 steps (written by the wandb SDK through
   tests/metrics/make_run.py, 6 keys per step as transformers logs them) parsed alone
   (`wandb_file.parse`) vs parsed + stored (`ingest.ingest_job`: points, rollups, cursor; one call with
   time enough to read it all), in points per second: best of several runs, alternated, since the
   machine is shared. Then catch-up: the whole file, new, through the worker's step
   `ingest.ingest_cluster` (a local read_from/listdir object in place of SFTP) with the default
   METRICS_INGEST_SECONDS_PER_CYCLE (2 s) and with 0 (one METRICS_READ_BYTES read per job per cycle,
   as before catch-up existed): cycles until it is whole, and the seconds the step took in all (the
   worker's poll interval between cycles comes on top).
2. Series query: one 2,000-point chart of the whole series, and of a zoomed middle third, for a
   1,000,000-point series vs a 10,000-point series (median of 30 queries, ms) and the ratio.
3. Live latency: one more record of the run file becomes visible; one ingest cycle (local file through
   the same `ingest_job`, a local read_from/listdir object instead of SFTP) stores it and pushes it;
   a websocket client (Channels' WebsocketCommunicator on the job consumer, in-memory channel layer)
   receives it. Median and p95 over 200 records. The worker's poll interval comes on top in production.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def setup_django(database_url: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ["DATABASE_URL"] = database_url
    os.environ.pop("REDIS_URL", None)  # in-memory channel layer: one process
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def median_ms(fn: Any, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - began) * 1000)
    return statistics.median(runs)


def make_job(name: str, cluster_name: str = "bench") -> Any:
    from portal.models import Member, Subteam
    from scheduler.models import Cluster, Job

    subteam, _ = Subteam.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    member = Member.objects.first()
    if member is None:
        from django.contrib.auth.models import User

        member = Member.objects.create(user=User.objects.create_user("bench"), display_name="Bench")
    cluster, _ = Cluster.objects.get_or_create(
        name=cluster_name, defaults={"host": "127.0.0.1", "username": "x", "work_dir": "/srv/tanuki-runs"}
    )
    return Job.objects.create(
        id=uuid.uuid4(),
        name=name,
        owner=member,
        subteam=subteam,
        cluster=cluster,
        command="true",
        script="",
        partition="gpu",
        time_limit_minutes=60,
        state=Job.State.RUNNING,
        started_at=timezone_now(),
        parameters={"config": {"training": {"max_steps": 100_000}}},
    )


def timezone_now() -> Any:
    from django.utils import timezone

    return timezone.now()


def bench_ingest(run_file: bytes, files_root: Path, repeat: int = 4) -> tuple[list[str], Any, Any]:
    from django.test.utils import override_settings

    from metrics import ingest, wandb_file
    from metrics.models import MetricPoint
    from tests.metrics.conftest import LocalRunFiles

    rows = sum(isinstance(e, wandb_file.HistoryRow) for e in wandb_file.parse(run_file).events)
    frame_s = min(timeit(lambda: wandb_file.scan(run_file)) for _ in range(3))
    files = LocalRunFiles(files_root)
    parse_runs, store_runs = [], []
    stored = 0
    with override_settings(METRICS_INGEST_SECONDS_PER_CYCLE=600):
        for index in range(repeat):  # alternated, so both see the same share of a busy machine
            parse_runs += [timeit(lambda: wandb_file.parse(run_file, summaries=False)) for _ in range(2)]
            job = make_job(f"ingest-{index}")
            files.place(job, run_file)
            began = time.perf_counter()
            stored = ingest.ingest_job(job, files)
            store_runs.append(time.perf_counter() - began)
            assert MetricPoint.objects.filter(job=job).count() == stored
    parse_s, store_s = min(parse_runs), min(store_runs)
    parse_rate, store_rate = stored / parse_s, stored / store_s  # the same points, counted once
    lines = [
        f"- run file: {len(run_file) / 1e6:.1f} MB, {rows:,} history rows, {stored:,} points "
        f"(6 keys per row + derived tokens/s)",
        f"- framing only (CRC + record boundaries): {len(run_file) / frame_s / 1e6:.0f} MB/s",
        f"- parse alone (history and exit records, as ingestion does): {parse_rate:,.0f} points/s "
        f"({parse_s * 1000:.0f} ms; best of {len(parse_runs)})",
        f"- parse + store (`ingest_job`: points, rollup levels 2 to 12, cursor; one call, chunks of 4, 8, 16 MiB): "
        f"{store_rate:,.0f} points/s ({store_s * 1000:.0f} ms; best of {len(store_runs)})",
        f"- parse + store / parse alone: **{store_rate / parse_rate:.0%}** of the parse rate",
    ]
    lines += bench_catch_up(run_file, files, stored)
    return lines, files, None


def bench_catch_up(run_file: bytes, files: Any, points: int) -> list[str]:
    """The whole file, new, through the worker's step: cycles and seconds until every point is stored."""
    from django.test.utils import override_settings

    from metrics import ingest
    from metrics.models import MetricPoint
    from scheduler.steps import CycleStats, Poll

    lines = []
    for budget in (2.0, 0.0):
        job = make_job(f"catch-up-{budget}", cluster_name=f"catch-up-{budget}")
        files.place(job, run_file)
        poll = Poll(job.cluster, files, "bench", CycleStats(job.cluster.name))
        cycles, seconds = 0, 0.0
        with override_settings(METRICS_INGEST_SECONDS_PER_CYCLE=budget):
            while MetricPoint.objects.filter(job=job).count() < points:
                began = time.perf_counter()
                ingest.ingest_cluster(poll)
                seconds += time.perf_counter() - began
                cycles += 1
        setting = "default, 2 s" if budget else "0: one 4 MiB read per cycle, as before"
        lines.append(
            f"- catch-up of the whole file through `ingest_cluster` (METRICS_INGEST_SECONDS_PER_CYCLE "
            f"{setting}): **{cycles} cycle{'s' if cycles > 1 else ''}**, {seconds:.1f} s in the step"
        )
    return lines


def timeit(fn: Any) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def load_series(name: str, points: int) -> Any:
    from metrics import store

    job = make_job(name)
    batch = 100_000
    began = time.perf_counter()
    for start in range(0, points, batch):
        chunk = [
            store.Point("train/loss", step, 2.0 + ((step * 7919) % 1000) / 1000.0)
            for step in range(start, min(points, start + batch))
        ]
        from django.db import transaction

        with transaction.atomic():
            store.add_points(job.pk, chunk)
    return job, time.perf_counter() - began


def bench_query(big_n: int = 1_000_000, small_n: int = 10_000) -> list[str]:
    from django.db import connection

    from metrics import store

    big_label, small_label = _label(big_n), _label(small_n)
    lines = []
    big, big_load = load_series("big", big_n)
    small, _ = load_series("small", small_n)
    lines.append(f"- loading {big_n:,} points in 100k batches: {big_n / big_load:,.0f} points/s")
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:  # measure reads of the database, not of a large WAL
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        with connection.cursor() as cursor:  # fresh statistics, as autovacuum would give them
            cursor.execute("ANALYZE metrics_metricbucket")
            cursor.execute("ANALYZE metrics_metricpoint")
    for job in (big, small):  # warm the caches for both alike
        store.series(job.pk, "train/loss")
    results = {}
    for label, job, n in ((big_label, big, big_n), (small_label, small, small_n)):
        whole = median_ms(lambda job=job: store.series(job.pk, "train/loss"), 30)
        lo, hi = n // 3, 2 * n // 3
        zoom = median_ms(lambda job=job, lo=lo, hi=hi: store.series(job.pk, "train/loss", lo, hi), 30)
        out = store.series(job.pk, "train/loss")
        results[label] = (whole, zoom, len(out["steps"]), out["width"])
    lines.append("")
    lines.append("| series | whole run (ms) | middle third (ms) | buckets returned | bucket width |")
    lines.append("|---|---|---|---|---|")
    for label, (whole, zoom, count, width) in results.items():
        lines.append(f"| {label} points | {whole:.1f} | {zoom:.1f} | {count} | {width} |")
    lines.append("")
    big_r, small_r = results[big_label], results[small_label]
    lines.append(
        f"- ratio {big_label} / {small_label}: whole run {big_r[0] / small_r[0]:.2f}, "
        f"middle third {big_r[1] / small_r[1]:.2f}"
    )
    return lines


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def query_only(database_url: str, big_n: int) -> list[str]:
    setup_django(database_url)
    from django.contrib.auth.models import User

    from portal.models import Member

    Member.objects.create(user=User.objects.create_user("bench"), display_name="Bench")
    return [f"### Chart query, {_label(big_n)} vs 10k points", "", *bench_query(big_n)]


def bench_latency(run_file: bytes, files: Any) -> list[str]:
    from asgiref.sync import sync_to_async
    from channels.testing import WebsocketCommunicator
    from django.contrib.auth.models import User

    from metrics import ingest
    from metrics.consumers import JobUpdatesConsumer

    job = make_job("live")
    path = files.place(job, run_file)
    boundaries = history_ends(run_file)
    files.visible[path] = boundaries[0]
    user = User.objects.get(username="bench")

    async def run() -> list[float]:
        communicator = WebsocketCommunicator(JobUpdatesConsumer.as_asgi(), f"/ws/jobs/{job.pk}/")
        communicator.scope["user"] = user
        communicator.scope["url_route"] = {"kwargs": {"job_id": job.pk}}
        connected, _ = await communicator.connect()
        assert connected
        await sync_to_async(ingest.ingest_job)(job, files)  # the first record
        while not await communicator.receive_nothing(timeout=0.2):
            await communicator.receive_from()
        latencies = []
        for end in boundaries[1:201]:
            files.visible[path] = end
            began = time.perf_counter()
            await sync_to_async(ingest.ingest_job)(job, files)
            await communicator.receive_json_from(timeout=10)
            latencies.append((time.perf_counter() - began) * 1000)
        await communicator.disconnect()
        return latencies

    latencies = asyncio.run(run())
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    return [
        f"- {len(latencies)} records, each made visible then one ingest cycle: median "
        f"{statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms (file to websocket client)"
    ]


def history_ends(data: bytes, limit: int = 201) -> list[int]:
    """Offsets just after the first `limit` history records: walk the chunk headers, decode each whole
    record."""
    import struct

    from metrics import wandb_file

    ends = []
    pos = record_start = wandb_file.HEADER_SIZE
    while pos + wandb_file.HEADER_SIZE <= len(data):
        left = wandb_file.BLOCK_SIZE - pos % wandb_file.BLOCK_SIZE
        if left < wandb_file.HEADER_SIZE:
            pos += left
            continue
        _crc, length, kind = struct.unpack_from("<IHB", data, pos)
        pos += wandb_file.HEADER_SIZE + length
        if kind in (wandb_file.FULL, wandb_file.LAST):
            events = wandb_file.parse(data[record_start:pos], record_start).events
            if any(isinstance(e, wandb_file.HistoryRow) for e in events):
                ends.append(pos)
                if len(ends) == limit:
                    break
            record_start = pos
    return ends


def write_run(directory: Path, steps: int) -> bytes:
    argv = [sys.executable, "-m", "tests.metrics.make_run", str(directory), "benchrun1", str(steps), "1234"]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=600)
    (path,) = directory.glob("wandb/offline-run-*-benchrun1/run-benchrun1.wandb")
    return path.read_bytes()


def run_all(
    database_url: str, label: str, run_file: bytes, work: Path, ingest_only: bool = False
) -> list[str]:
    setup_django(database_url)
    from django.contrib.auth.models import User

    from portal.models import Member

    if not User.objects.filter(username="bench").exists():
        Member.objects.create(user=User.objects.create_user("bench"), display_name="Bench")
    lines = [f"## {label}", "", "### 1. Ingest", ""]
    ingest_lines, files, _job = bench_ingest(run_file, work / f"files-{label}")
    lines += ingest_lines
    if ingest_only:
        return lines
    lines += ["", "### 2. Chart query, 1M vs 10k points", ""]
    lines += bench_query()
    lines += ["", "### 3. Live latency", ""]
    lines += bench_latency(run_file, files)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--postgres",
        default=os.environ["DATABASE_URL"]
        if os.environ.get("DATABASE_URL", "").startswith("postgres")
        else "",
        help="postgres://user@host:port/ (a scratch database is made; default: DATABASE_URL if PostgreSQL)",
    )
    parser.add_argument("--ingest-only", action="store_true", help="only part 1")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", default="")
    parser.add_argument(
        "--query-only", type=int, default=0, help="only part 2, with a series of this many points (SQLite)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="metrics-bench-"))
    cached = Path(tempfile.gettempdir()) / "metrics-bench-run-20k.wandb"
    if not cached.exists():
        cached.write_bytes(write_run(work / "run", 20_000))
    run_file = cached.read_bytes()
    if args.query_only:
        lines = query_only(f"sqlite:///{work / 'bench.sqlite3'}", args.query_only)
    elif args.postgres:
        import psycopg

        server = urlsplit(args.postgres)._replace(path="").geturl()  # the server, whatever database named
        admin = server + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS metrics_bench")
            conn.execute("CREATE DATABASE metrics_bench")
        try:
            lines = run_all(server + "/metrics_bench", "PostgreSQL", run_file, work, args.ingest_only)
        finally:
            from django.db import connections

            connections.close_all()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS metrics_bench")
    else:
        db = work / "bench.sqlite3"
        lines = run_all(f"sqlite:///{db}", "SQLite", run_file, work, args.ingest_only)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
