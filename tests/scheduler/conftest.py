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
from scheduler.models import Cluster, Job
from scheduler.worker import Worker
from tests.personas import Team, grant_cluster_accounts

ROOT = Path(__file__).resolve().parents[2]
DEVCLUSTER = ROOT / "scripts" / "devcluster"
# The tests' own cluster instance (name, ports, state and configuration apart from the demo's), so
# that what `make demo` leaves on its cluster (reservations, jobs) never reaches a test.
INSTANCE = "test"
JUDGE_NAME = "test-judge"
JUDGE_KEY_ENV = "TANUKI_TEST_JUDGE_KEY"
STATE_DIR = Path(f"{os.environ.get('DEVCLUSTER_DIR', '/var/lib/tanuki-devcluster')}-{INSTANCE}")


def devcluster(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # Not with $TZ: Django sets it to the portal's TIME_ZONE, and daemons started with it pass it on
    # (sshd hands TZ to every session), so Slurm would print its times in the portal's zone.
    env = {name: value for name, value in os.environ.items() if name != "TZ"}
    env["DEVCLUSTER_INSTANCE"] = INSTANCE
    env.pop("DEVCLUSTER_PORT_OFFSET", None)
    return subprocess.run(
        [str(DEVCLUSTER), *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


@pytest.fixture(scope="session")
def devcluster_info() -> dict[str, Any]:
    """Bring the tests' dev cluster instance up (idempotent; installs Debian's packages on a fresh
    machine)."""
    if os.geteuid() != 0:
        pytest.fail("the scheduler tests need the dev cluster, which needs root (scripts/devcluster up)")
    result = devcluster("up")
    if result.returncode != 0:
        pytest.fail(f"scripts/devcluster up failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    info: dict[str, Any] = json.loads((STATE_DIR / "cluster.json").read_text())
    info["service_dir"] = info["work_dir"].replace("{user}", info["username"])  # the service account's own
    return info


class Remote:
    """The test's own view of the cluster (its own SSH connection): what exists there, whatever the
    portal's database says."""

    def __init__(self, info: dict[str, Any], user: str = "") -> None:
        """As the service account, or as `user` (a member's cluster user, by a certificate of the
        dev cluster's user CA)."""
        self.info = info
        self.conn = ssh.Connection(
            host=info["host"],
            port=int(info["port"]),
            username=user or info["username"],
            key_path=Path(info["key_path"]),
            host_key=info["host_key"],
            credential=ssh.Certificate(Path(info["ca_key_path"]), user) if user else None,
        )

    def as_user(self, user: str) -> Remote:
        return Remote(self.info, user)

    def for_job(self, job: Job) -> Remote:
        """As the job's own member: only they can see into its run directory (0700)."""
        return self.as_user(job.cluster_user)

    def run(self, *argv: str) -> ssh.CommandResult:
        return self.conn.run(argv)

    def exists(self, path: str) -> bool:
        return self.conn.run(["test", "-e", path]).exit_status == 0

    def read(self, path: str) -> bytes:
        """A whole remote file (b"" when missing)."""
        data = b""
        while chunk := self.conn.read_from(path, len(data)):
            data += chunk
        return data

    def slurm_jobs(self, *names: str) -> dict[str, set[str]]:
        """Every Slurm job with one of these names, queued, running or finished: name -> job ids."""
        found: dict[str, set[str]] = {name: set() for name in names}
        if not names:
            return found
        joined = ",".join(names)
        queue = self.conn.run(
            ["squeue", "--noheader", "--states=all", "--name", joined, "--format", "%i|%j"]
        ).check()
        accounting = self.conn.run(
            [
                "sacct",
                "--noheader",
                "--parsable2",
                "--allocations",
                "--starttime",
                "now-1days",
                "--name",
                joined,
                "--format",
                "JobID,JobName",
            ]
        ).check()
        for line in (queue.stdout + accounting.stdout).splitlines():
            if "|" in line:
                job_id, name = line.split("|", 1)
                if name in found:
                    found[name].add(job_id.strip())
        return found

    def sacct_state(self, job_id: str) -> str:
        result = self.conn.run(
            ["sacct", "--noheader", "--parsable2", "--allocations", "--jobs", job_id, "--format", "State"]
        ).check()
        return result.stdout.strip()

    def cancel_named(self, *names: str) -> None:
        """scancel whatever still runs under these names (cleanup; never other people's jobs)."""
        ids = sorted({i for found in self.slurm_jobs(*names).values() for i in found})
        if ids:
            self.conn.run(["scancel", *ids])

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def remote(devcluster_info: dict[str, Any]) -> Iterator[Remote]:
    remote = Remote(devcluster_info)
    yield remote
    remote.close()


def fault(*args: str) -> None:
    """Inject (or repair) a fault with scripts/devcluster; fails the test when the command fails."""
    result = devcluster(*args, timeout=120)
    if result.returncode != 0:
        pytest.fail(f"scripts/devcluster {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture
def cluster(team: Team, devcluster_info: dict[str, Any], settings: Any) -> Iterator[Cluster]:
    """The dev cluster registered in this test's database, host key pinned, the portal's user CA set,
    each persona's own cluster user (`tk-<role>`) and each subteam's Slurm account in place (their
    associations added by the worker's step, as the service account)."""
    from demo.management.commands.register_devcluster import local_time_zone

    info = devcluster_info
    settings.SSH_USER_CA_KEY = info["ca_key_path"]
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
    grant_cluster_accounts(team, cluster)
    sync_associations_now(cluster)
    yield cluster
    # Leave nothing of this test running on the shared cluster.
    names = [job.slurm_name for job in Job.objects.filter(cluster_id=cluster.pk)]
    if names:
        remote = Remote(info)
        try:
            remote.cancel_named(*names)
        except ssh.SlurmError:
            pass
        finally:
            remote.close()
    ssh.pool.close_all()


def sync_associations_now(cluster: Cluster) -> None:
    """Run the worker's association step once, as the service account, and fail on what it could not do."""
    from scheduler.associations import sync_associations
    from scheduler.identity import connect_service
    from scheduler.models import Association
    from scheduler.steps import CycleStats, Poll

    pool = ssh.Pool(max_backoff=1.0)
    try:
        conn = connect_service(cluster, pool)
        sync_associations(Poll(cluster, conn, "fixture", CycleStats(cluster.name), pool=pool))
    finally:
        pool.close_all()
    failed = Association.objects.filter(cluster=cluster, state=Association.State.FAILED)
    assert not failed.exists(), [(a.username, a.account, a.last_error) for a in failed]


@pytest.fixture
def worker() -> Iterator[Worker]:
    worker = Worker(name="test-worker", pool=ssh.Pool(max_backoff=2.0))
    yield worker
    worker.pool.close_all()


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


@pytest.fixture(scope="session")
def assets(devcluster_info: dict[str, Any]) -> Any:
    """A tiny model and data sets (demo/assets.py), staged once per session on the cluster."""
    import uuid

    from demo import assets as demo_assets

    remote = Remote(devcluster_info)
    try:
        root = f"{devcluster_info['shared_dir']}/test-assets-{uuid.uuid4().hex[:8]}"
        return demo_assets.stage(remote.conn, root)
    finally:
        remote.close()


@pytest.fixture
def judge() -> Iterator[Any]:
    """A local chat-completions server the evaluation jobs on the cluster ask (tests/judge.py)."""
    from tests.judge import JudgeServer

    with JudgeServer() as server:
        yield server


@pytest.fixture
def training_cluster(cluster: Cluster, judge: Any, monkeypatch: pytest.MonkeyPatch) -> Cluster:
    """The dev cluster set up to run `python -m training.*`: its nodes are this machine, so jobs use
    this Python environment. The judge is an admin's endpoint whose key the portal host holds in an
    environment variable; it reaches each evaluation as a file only the job's user reads, never in the
    database, a script, the preamble or run.yaml."""
    from demo.management.commands.register_devcluster import allow_local_python, local_python_preamble
    from scheduler.models import JudgeEndpoint
    from tests.judge import API_KEY

    allow_local_python()
    monkeypatch.setenv(JUDGE_KEY_ENV, API_KEY)
    JudgeEndpoint.objects.create(name=JUDGE_NAME, base_url=judge.base_url, key_env=JUDGE_KEY_ENV)
    cluster.env_preamble = local_python_preamble()
    cluster.save()
    return cluster
