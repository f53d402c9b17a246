"""`manage.py run_scheduler` as its own process: it works the queue and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from scheduler import services
from scheduler.models import Cluster, Job
from tests.personas import Team

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """A URL for the test database, so a child process uses the same one."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    return f"postgres://{user}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_the_worker_process_finishes_a_job_and_stops_on_sigterm(team: Team, cluster: Cluster) -> None:
    job = services.submit_job(
        team.member("member"),
        services.JobSpec(subteam=team.sft, cluster=cluster, name="from-process", command="echo process"),
    )
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_scheduler"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not Job.objects.get(pk=job.pk).is_terminal:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "run_scheduler did not finish the job within 60 s"
            time.sleep(0.5)
        assert Job.objects.get(pk=job.pk).state == Job.State.COMPLETED
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, output
    assert "scheduler stopped" in output
    cluster.refresh_from_db()
    assert cluster.poll_claimed_by == ""  # claims released on the way out
