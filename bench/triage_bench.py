"""Failure triage: what classifying a finished job costs, and that it adds no remote command to a cycle
(DEVCLUSTER_INSTANCE=test scripts/devcluster up first for part 2; run as root).

    .venv/bin/python bench/triage_bench.py            # writes bench/results/triage.md

1. Per job (database only): jobs that ended badly with stored logs of 10 KiB, 1 MiB and 16 MiB (the
   failure's lines at the end, chunked as the worker stores them); `triage.diagnose(job)` timed per job
   (median of 20 jobs per size), and the log bytes it read (what `logs.log_text` returned).
2. Per cycle (the dev cluster): remote commands and SFTP operations of one worker cycle with no job to
   diagnose and with 20 failed jobs waiting for their diagnosis (rows with fake Slurm ids, logs final).
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB = Path(tempfile.gettempdir()) / "tanuki-triage-bench.sqlite3"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{DB}")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.devcluster import give_accounts, machine_note, register_cluster  # noqa: E402
from portal.models import Member, Membership, Subteam  # noqa: E402
from scheduler import logs, services, ssh, triage  # noqa: E402
from scheduler.models import Job, JobLogChunk  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.personas import make_user  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "triage.md"
FAILURE = (ROOT / "tests" / "scheduler" / "recorded" / "triage" / "cuda_oom.log").read_bytes()
CHUNK = 1 << 20  # as LOG_BYTES_PER_CYCLE stores them


def fresh_database() -> None:
    if connection.vendor == "sqlite":
        DB.unlink(missing_ok=True)
    call_command("flush", interactive=False, verbosity=0)
    call_command("migrate", verbosity=0)


def failed_job(member: Member, subteam: Subteam, cluster: object, size: int, serial: int) -> Job:
    job = services.submit_job(
        member,
        services.JobSpec(subteam=subteam, cluster=cluster, name=f"f{serial}", command="x"),  # type: ignore[arg-type]
    )
    filler = (b"step done, loss 2.1\n" * (size // 20 + 1))[: max(0, size - len(FAILURE))]
    data = filler + FAILURE
    for offset in range(0, len(data), CHUNK):
        piece = data[offset : offset + CHUNK]
        JobLogChunk.objects.create(job=job, stream="stderr", offset=offset, data=piece, size=len(piece))
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(
        state=Job.State.FAILED, exit_code=1, slurm_job_id=str(900000 + serial), submitted_at=now,
        ended_at=now, logs_final=True, stderr_offset=len(data),
    )  # fmt: skip
    return Job.objects.get(pk=job.pk)


def main() -> None:
    fresh_database()
    cluster = register_cluster()
    subteam = Subteam.objects.create(name="Fine-tuning", slug="sft")
    member = make_user("bench").member
    Membership.objects.create(member=member, subteam=subteam, role="member", started=dt.date(2024, 6, 1))
    give_accounts(cluster, subteam, [member])

    read: list[int] = []
    original = logs.log_text

    def counting(*args: object, **kwargs: object) -> tuple[str, int]:
        text, end = original(*args, **kwargs)  # type: ignore[arg-type]
        read.append(len(text.encode()))
        return text, end

    triage.logs.log_text = counting  # type: ignore[assignment]
    lines = [
        "| log size | jobs | ms per job (median) | p90 | log text classified per job (bytes) | stored chunk bytes fetched | classified as |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    serial = 0
    for size, label in ((10 << 10, "10 KiB"), (1 << 20, "1 MiB"), (16 << 20, "16 MiB")):
        jobs = []
        for _ in range(20):
            serial += 1
            jobs.append(failed_job(member, subteam, cluster, size, serial))
        times, codes = [], set()
        read.clear()
        for job in jobs:
            began = time.perf_counter()
            codes.add(triage.diagnose(job).code)
            times.append((time.perf_counter() - began) * 1000)
        per_job = sum(read) // len(jobs)
        # What the database returned: the stored chunks that hold the last TAIL_BYTES (whole chunks).
        end = jobs[0].stderr_offset
        touched = sum(
            JobLogChunk.objects.filter(
                job=jobs[0], stream="stderr", offset__gt=end - triage.TAIL_BYTES - CHUNK
            ).values_list("size", flat=True)
        )
        times.sort()
        lines.append(
            f"| {label} | {len(jobs)} | {statistics.median(times):.2f} | {times[int(len(times) * 0.9) - 1]:.2f} "
            f"| {per_job:,} | {touched:,} | {', '.join(sorted(codes))} |"
        )
    triage.logs.log_text = original  # type: ignore[assignment]

    # Part 2: a cycle's remote commands, without and with jobs waiting for a diagnosis.
    Job.objects.all().delete()
    worker = Worker(name="triage-bench", pool=ssh.Pool(max_backoff=2.0))
    cycles = []
    try:
        worker.cycle()  # inventory, associations
        for waiting in (0, 20):
            for i in range(waiting):
                failed_job(member, subteam, cluster, 10 << 10, 5000 + i)
            worker.cycle()
            stats = worker.last_stats[cluster.pk]
            diagnosed = Job.objects.filter(diagnosis__isnull=False).count()
            cycles.append(f"| {waiting} | {stats.commands} | {stats.sftp_ops} | {diagnosed} |")
            Job.objects.all().delete()
    finally:
        worker.pool.close_all()

    RESULTS.write_text(
        "# Failure triage benchmarks\n\n"
        f"`.venv/bin/python bench/triage_bench.py`, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{connection.vendor}, {machine_note()}.\n\n"
        "## Cost per finished job (database only)\n\n"
        "The log is read from its end only (`triage.TAIL_BYTES` = 64 KiB per stream, from the last stored "
        "chunks), so the cost does not grow with the log.\n\n" + "\n".join(lines) + "\n\n"
        "## Remote commands per worker cycle\n\n"
        "| jobs waiting for a diagnosis | remote commands | SFTP operations | diagnosed in the cycle |\n"
        "|---:|---:|---:|---:|\n" + "\n".join(cycles) + "\n\n"
        "Triage reads the logs the `read_logs` step already stored: the cycle sends the same commands.\n"
    )
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
