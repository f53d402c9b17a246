"""The real dev cluster (scripts/devcluster: Slurm + sshd on loopback) for the scheduler's tests."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler import ssh
from scheduler.models import Cluster
from scheduler.worker import Worker

ROOT = Path(__file__).resolve().parents[2]
DEVCLUSTER = ROOT / "scripts" / "devcluster"
STATE_DIR = Path(os.environ.get("DEVCLUSTER_DIR", "/var/lib/tanuki-devcluster"))


def devcluster(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEVCLUSTER), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="session")
def devcluster_info() -> dict[str, Any]:
    """Bring the dev cluster up (idempotent; installs Debian's packages on a fresh machine)."""
    if os.geteuid() != 0:
        pytest.fail("the scheduler tests need the dev cluster, which needs root (scripts/devcluster up)")
    result = devcluster("up")
    if result.returncode != 0:
        pytest.fail(f"scripts/devcluster up failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return json.loads((STATE_DIR / "cluster.json").read_text())


@pytest.fixture
def cluster(db: None, devcluster_info: dict[str, Any]) -> Iterator[Cluster]:
    """The dev cluster registered in this test's database, host key pinned."""
    from scheduler.management.commands.register_devcluster import local_time_zone

    info = devcluster_info
    cluster = Cluster.objects.create(
        name=info["name"],
        host=info["host"],
        port=int(info["port"]),
        username=info["username"],
        key_path=info["key_path"],
        host_key=info["host_key"],
        default_partition=info["partition"],
        default_account="sft",
        work_dir=info["work_dir"],
        time_zone=local_time_zone(),
    )
    yield cluster
    ssh.pool.close_all()


@pytest.fixture
def worker() -> Worker:
    return Worker(name="test-worker", pool=ssh.Pool(max_backoff=2.0))


@pytest.fixture
def run_until(worker: Worker) -> Callable[..., None]:
    """Run worker cycles until a condition holds (or fail after a deadline)."""

    def run(condition: Callable[[], bool], timeout: float = 60.0, interval: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while True:
            worker.cycle()
            if condition():
                return
            if time.monotonic() > deadline:
                stats = list(worker.last_stats.values())
                pytest.fail(f"condition not met within {timeout:.0f} s; last cycle: {stats}")
            time.sleep(interval)

    return run
