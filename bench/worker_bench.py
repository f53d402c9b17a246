"""The worker as its own process on PostgreSQL (the production setup): how fast a submitted job reaches
Slurm (the web process wakes the worker with NOTIFY), and how fast a new worker takes over after kill -9.

    DEVCLUSTER_INSTANCE=test scripts/devcluster up
    python bench/worker_bench.py        # writes bench/results/worker.md

Uses the database `tanuki_worker_bench` on the PostgreSQL at 127.0.0.1:5432 (trust auth; created when
missing, dropped at the end) and the tests' dev cluster with the bench users tk-u0 … tk-u9.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DB_NAME = "tanuki_worker_bench"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ["DATABASE_URL"] = DB_URL

import psycopg  # noqa: E402

with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
    admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    admin.execute(f"CREATE DATABASE {DB_NAME}")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.devcluster import (  # noqa: E402
    add_associations,
    cancel_users,
    give_accounts,
    machine_note,
    register_cluster,
)
from portal.models import Member, Membership, Subteam  # noqa: E402
from scheduler import services, ssh  # noqa: E402
from scheduler.identity import connect_service  # noqa: E402
from scheduler.models import Cluster, Job, JobEvent  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from tests.personas import make_user  # noqa: E402

OUT = ROOT / "bench" / "results" / "worker.md"


def start_worker(name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": DB_URL, "PYTHONPATH": str(ROOT), "SLACK_BOT_TOKEN": ""}
    env.pop("TZ", None)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scheduler.process_worker", name],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def submit(member: Member, subteam: Subteam, cluster: Cluster, name: str) -> Job:
    spec = services.JobSpec(
        subteam=subteam, cluster=cluster, name=name, command="sleep 30", time_limit_minutes=5
    )
    return services.submit_job(member, spec)


def until(condition: object, timeout: float) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise SystemExit("timed out")
        time.sleep(0.01)
    return time.monotonic() - started


def latency(member: Member, subteam: Subteam, cluster: Cluster, n: int) -> list[float]:
    """Submit one job at a time (as the web process does, NOTIFY after commit) and time its Slurm id."""
    seconds = []
    for i in range(n):
        job = submit(member, subteam, cluster, f"latency-{i}")
        seconds.append(
            until(lambda job=job: Job.objects.filter(pk=job.pk).exclude(slurm_job_id="").exists(), 60)
        )
        time.sleep(0.3)  # let the worker go idle again, as between real submissions
    return seconds


def takeover(member: Member, subteam: Subteam, cluster: Cluster, log_dir: Path) -> dict[str, float]:
    jobs = [submit(member, subteam, cluster, f"takeover-{i}") for i in range(20)]
    doomed = start_worker("doomed", log_dir / "doomed.log")
    until(lambda: Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(slurm_job_id="").count() >= 3, 60)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    killed_at, started = timezone.now(), time.monotonic()
    successor = start_worker("successor", log_dir / "successor.log")
    try:
        first = until(
            lambda: JobEvent.objects.filter(
                job__in=jobs, kind__in=[JobEvent.Kind.SENT, JobEvent.Kind.ADOPTED], at__gt=killed_at
            ).exists(),
            60,
        )
        until(lambda: not Job.objects.filter(pk__in=[j.pk for j in jobs], slurm_job_id="").exists(), 120)
        every = time.monotonic() - started
    finally:
        successor.terminate()
        successor.wait(30)
    return {"first_submission_s": first, "all_submitted_s": every}


def main() -> None:
    call_command("migrate", verbosity=0)
    cluster = register_cluster()
    subteam = Subteam.objects.create(name="Bench", slug="bench")
    member = make_user("bench0").member
    Membership.objects.create(member=member, subteam=subteam)
    give_accounts(cluster, subteam, [member])
    setup = Worker(name="bench-setup")
    add_associations(cluster, setup)
    setup.release_claims()
    log_dir = Path(tempfile.gettempdir())
    worker = start_worker("bench-worker", log_dir / "bench-worker.log")
    try:
        time.sleep(3)  # its first cycles
        seconds = latency(member, subteam, cluster, 100)
    finally:
        worker.terminate()
        worker.wait(30)
    conn = connect_service(cluster, ssh.pool)
    cancel_users(conn, ["tk-u0"])
    taken = takeover(member, subteam, cluster, log_dir)
    cancel_users(conn, ["tk-u0"])
    quantiles = statistics.quantiles(seconds, n=20)
    lines = [
        "# The worker as its own process (PostgreSQL, dev cluster)",
        "",
        f"`python bench/worker_bench.py`, {timezone.now():%Y-%m-%d %H:%M} UTC. {machine_note()}",
        "",
        "## Submit → Slurm id, worker in another process (woken by PostgreSQL NOTIFY)",
        "",
        "100 jobs submitted one at a time through `services.submit_job` (as a web request does); time from",
        "the commit to the Slurm id in the database.",
        "",
        f"- median **{statistics.median(seconds):.3f} s**, p95 {quantiles[18]:.3f} s, max {max(seconds):.3f} s"
        " (target: median ≤ 1 s)",
        "",
        "## Takeover after kill -9",
        "",
        "20 jobs submitted, the worker killed (SIGKILL) once 3 had reached Slurm, a new worker started at once.",
        "Its claims run out within `CLAIM_LEASE` (6 s; renewed every 2 s by a living worker's heartbeat).",
        "",
        f"- first submission by the new worker **{taken['first_submission_s']:.1f} s** after the kill"
        " (target: ≤ 10 s)",
        f"- every job in Slurm {taken['all_submitted_s']:.1f} s after the kill (a job whose sbatch was in doubt"
        " waits for accounting's grace before it is sent again, or is adopted)",
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))
    connection.close()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    main()
