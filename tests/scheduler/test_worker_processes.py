"""Faults on real worker processes (the production loop in its own process, real Slurm and sshd, the
test database: SQLite or PostgreSQL): SIGSTOP with a successor, kill -9 mid-burst, kill -9 right after
cancels. Nothing runs twice, nothing is lost, every cancel is carried out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from scheduler import services
from scheduler.models import Cluster, Job, JobEvent
from tests.personas import Team
from tests.scheduler.conftest import Remote

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return (
        f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )


class Workers:
    """Worker processes started by a test, all stopped (and resumed, if frozen) when it ends."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, *flags: str) -> subprocess.Popen[str]:
        env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONPATH": str(ROOT), "SLACK_BOT_TOKEN": ""}
        env.pop("TZ", None)
        out = (self.log_dir / f"{name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.scheduler.process_worker", name, *flags],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text()

    def wait_for_log(self, name: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log(name):
            assert self.processes[name].poll() is None, self.log(name)[-3000:]
            assert time.monotonic() < deadline, f"{name} never logged {text!r}:\n{self.log(name)[-3000:]}"
            time.sleep(0.2)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    started = Workers(tmp_path)
    yield started
    started.stop_all()


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def wait(condition: Callable[[], bool], timeout: float, what: str, workers: Workers | None = None) -> float:
    """Seconds until the condition held (fails after `timeout`, with the workers' logs)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            logs = (
                "".join(f"\n--- {n}\n{workers.log(n)[-2500:]}" for n in workers.processes) if workers else ""
            )
            pytest.fail(f"{what}{logs}")
        time.sleep(0.2)
    return time.monotonic() - started


def submit(team: Team, cluster: Cluster, name: str, command: str) -> Job:
    spec = services.JobSpec(
        subteam=team.sft, cluster=cluster, name=name, command=command, time_limit_minutes=5
    )
    return services.submit_job(team.member("member"), spec)


def live_slurm_jobs(remote: Remote, job: Job) -> dict[str, str]:
    """Every Slurm job made for this portal job: id -> state."""
    ids = remote.slurm_jobs(job.slurm_name)[job.slurm_name]
    return {i: remote.sacct_state(i) or "PENDING" for i in ids}


def test_a_frozen_worker_that_wakes_after_a_successor_took_over_runs_nothing_twice(
    team: Team, cluster: Cluster, remote: Remote, workers: Workers
) -> None:
    job = submit(team, cluster, "frozen", "sleep 60")
    first = workers.start("first", "--freeze-before-sbatch")
    workers.wait_for_log("first", "FROZEN before sbatch")
    assert fresh(job).submit_attempted_at is not None and fresh(job).slurm_job_id == ""
    workers.start("second")
    # The frozen worker's heartbeat froze too: its claims run out, the successor adopts nothing (the job
    # is nowhere) and, after the grace for slow accounting, submits it.
    wait(lambda: fresh(job).slurm_job_id != "", 90, "the successor never submitted the job")
    successor_id = fresh(job).slurm_job_id
    first.send_signal(signal.SIGCONT)  # it sends its sbatch now, and cannot record it
    workers.wait_for_log("first", "lost its claim", timeout=60)
    assert "WARNING" in workers.log("first")
    wait(
        lambda: sum(not s.startswith("CANCELLED") for s in live_slurm_jobs(remote, job).values()) == 1,
        30,
        "the frozen worker's extra Slurm job was not cancelled",
    )
    states = live_slurm_jobs(remote, job)
    assert len(states) == 2, states  # the successor's, and the frozen worker's, cancelled at once
    assert not states[successor_id].startswith("CANCELLED"), states
    assert fresh(job).slurm_job_id == successor_id  # the record was not overwritten
    assert JobEvent.objects.filter(job=job, kind=JobEvent.Kind.SENT).count() == 1


def test_a_worker_killed_mid_burst_is_taken_over_in_seconds_without_a_duplicate(
    team: Team, cluster: Cluster, remote: Remote, workers: Workers
) -> None:
    jobs = [submit(team, cluster, f"burst-{i}", "sleep 60") for i in range(20)]
    doomed = workers.start("doomed")
    wait(
        lambda: Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(slurm_job_id="").count() >= 3,
        60,
        "no sbatch",
    )
    doomed.kill()
    doomed.wait(10)
    killed_at = timezone.now()
    workers.start("successor")
    # Takeover: from the kill to the successor's first submission (the dead worker's claims ran out).
    taken_over = wait(
        lambda: JobEvent.objects.filter(
            job__in=jobs, kind__in=[JobEvent.Kind.SENT, JobEvent.Kind.ADOPTED], at__gt=killed_at
        ).exists(),
        30,
        "the successor never took over",
    )
    wait(
        lambda: Job.objects.filter(pk__in=[j.pk for j in jobs]).exclude(slurm_job_id="").count() == 20,
        120,
        "not every job reached Slurm",
    )
    for job in jobs:
        states = live_slurm_jobs(remote, fresh(job))
        assert list(states) == [fresh(job).slurm_job_id], (job.name, states)  # exactly one Slurm job each
    print(f"takeover after kill -9: {taken_over:.1f} s")
    assert taken_over < 20


def test_cancels_asked_for_just_before_the_worker_is_killed_are_all_carried_out(
    team: Team, cluster: Cluster, remote: Remote, workers: Workers
) -> None:
    jobs = [submit(team, cluster, f"cancel-{i}", "sleep 120") for i in range(5)]
    doomed = workers.start("doomed")
    wait(
        lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], state=Job.State.RUNNING).count() == 5,
        90,
        "not running",
    )
    for job in jobs:
        services.cancel_job(team.member("member"), fresh(job))
    doomed.kill()
    doomed.wait(10)
    workers.start("successor")
    wait(lambda: all(fresh(j).is_terminal for j in jobs), 60, "the cancels were lost")
    for job in jobs:
        job = fresh(job)
        assert job.state == Job.State.CANCELLED and job.cancel_sent_at is not None, (job.name, job.state)
        assert remote.sacct_state(job.slurm_job_id).startswith("CANCELLED")


def test_a_submit_in_another_process_wakes_a_listening_worker_at_once(team: Team, cluster: Cluster) -> None:
    """On PostgreSQL the commit of a submit sends NOTIFY; a worker's listener wakes its loop. On SQLite
    (the embedded deployment, one process) there is nothing to listen to: the listener returns."""
    import threading

    from scheduler import wakeups

    stop, wakeup = threading.Event(), threading.Event()
    listener = threading.Thread(target=wakeups.listen, args=(stop, wakeup), daemon=True)
    listener.start()
    try:
        if connection.vendor != "postgresql":
            listener.join(5)
            assert not listener.is_alive()
            return
        time.sleep(1.0)  # LISTEN is in place
        assert not wakeup.is_set()
        submit(team, cluster, "wakes", "true")  # commits (transaction=True): NOTIFY goes out
        assert wakeup.wait(5), "the listener was not woken"
    finally:
        stop.set()
        listener.join(5)
