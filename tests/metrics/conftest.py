"""Real W&B run files (written by the wandb SDK in a child process) and a local view of a run directory."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from portal.models import Subteam
from scheduler.models import Cluster, Job
from tests.personas import Team

ROOT = Path(__file__).resolve().parents[2]
REMOTE_WORK_DIR = "/srv/tanuki-runs"
SPIKE_STEP = 150


def write_run(directory: Path, run_id: str, steps: int, spike_at: int | None = None) -> Path:
    """A finished offline run in directory/wandb/offline-run-…-<id>/; returns its .wandb file."""
    argv = [sys.executable, "-m", "tests.metrics.make_run", str(directory), run_id, str(steps)]
    if spike_at is not None:
        argv.append(str(spike_at))
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=600)
    (path,) = directory.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    return path


@pytest.fixture(scope="session")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of one real run: 300 steps with a loss spike at step 150."""
    directory = tmp_path_factory.mktemp("wandb-run")
    return write_run(directory, "sessionrun1", 300, SPIKE_STEP).read_bytes()


LONG_RUN_STEPS = 20_000


@pytest.fixture(scope="session")
def long_run_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of one long real run: 20,000 steps (about 13 MB), more than one default read."""
    directory = tmp_path_factory.mktemp("wandb-long-run")
    return write_run(directory, "sessionlongrun1", LONG_RUN_STEPS).read_bytes()


@dataclass
class LocalRunFiles:
    """The cluster's run directories seen on a local disk, exposing what ingestion uses of
    scheduler.ssh.Connection (read_from, listdir). `visible` caps how much of a file exists so far, to
    replay a file being written."""

    root: Path
    visible: dict[str, int] = field(default_factory=dict)
    reads: int = 0
    listings: int = 0
    read_sizes: list[int] = field(default_factory=list)  # max_bytes of each read, in order

    def local(self, path: str) -> Path:
        assert path.startswith(REMOTE_WORK_DIR + "/"), path
        return self.root / path.removeprefix(REMOTE_WORK_DIR + "/")

    def read_from(self, path: str, offset: int, max_bytes: int = 1 << 20) -> bytes:
        self.reads += 1
        self.read_sizes.append(max_bytes)
        local = self.local(path)
        if not local.is_file():
            return b""
        end = min(local.stat().st_size, self.visible.get(path, 1 << 62), offset + max_bytes)
        with local.open("rb") as handle:
            handle.seek(offset)
            return handle.read(max(0, end - offset))

    def listdir(self, path: str) -> list[tuple[str, int, bool]]:
        self.listings += 1
        local = self.local(path)
        if not local.is_dir():
            return []
        return sorted((p.name, p.stat().st_size, p.is_dir()) for p in local.iterdir())

    def place(self, job: Job, data: bytes, *, online: bool = False) -> str:
        """Put a run file for the job where the trainer would write it; returns its remote path."""
        name = f"{'' if online else 'offline-'}run-20240621_101500-{job.id}"
        local = self.root / str(job.id) / "wandb" / name / f"run-{job.id}.wandb"
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        return f"{REMOTE_WORK_DIR}/{job.id}/wandb/{name}/run-{job.id}.wandb"


@pytest.fixture
def files(tmp_path: Path) -> LocalRunFiles:
    return LocalRunFiles(tmp_path)


@pytest.fixture
def local_cluster(db: None) -> Cluster:
    return Cluster.objects.create(name="local", host="127.0.0.1", username="tanuki", work_dir=REMOTE_WORK_DIR)


MakeJob = Callable[..., Job]


@pytest.fixture
def make_job(team: Team, local_cluster: Cluster) -> MakeJob:
    def make(
        subteam: Subteam | None = None,
        state: str = Job.State.RUNNING,
        cluster: Cluster | None = None,
        **extra: object,
    ) -> Job:
        from django.utils import timezone

        fields: dict[str, object] = {
            "name": "sft-8b-lora",
            "owner": team.member("member"),
            "subteam": subteam or team.sft,
            "cluster": cluster or local_cluster,
            "command": "python -m training.runner run.yaml",
            "script": "#!/bin/bash\n",
            "partition": "gpu",
            "time_limit_minutes": 60,
            "state": state,
            "started_at": timezone.now(),
            "parameters": {
                "config": {
                    "training": {
                        "max_steps": 300,
                        "micro_batch_size": 4,
                        "gradient_accumulation_steps": 2,
                        "max_length": 512,
                    }
                }
            },
            "id": uuid.uuid4(),
        }
        fields.update(extra)
        return Job.objects.create(**fields)

    return make
