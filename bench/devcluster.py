"""The tests' dev cluster instance as the benches use it (DEVCLUSTER_INSTANCE=test scripts/devcluster up
first; run as root). Import after django.setup().

Each member's job runs as the member's own cluster user, so a bench that submits jobs:
1. registers the cluster like tests/scheduler/conftest.py's `cluster` fixture (`register_cluster`);
2. gives its members the dev cluster's bench users `tk-u0` … `tk-u9` (never the tests' `tk-<role>`
   users, whose jobs a test may be waiting for) and maps their subteam to a Slurm account
   (`give_accounts`);
3. runs one worker cycle so that Slurm has the associations (user → account) before any sbatch, as
   Slurm enforces them (`add_associations`);
4. cancels its users' jobs through the service account (an Operator) when done (`cancel_users`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings

from demo.management.commands.register_devcluster import local_time_zone
from portal.models import Member, Subteam
from scheduler import services, ssh
from scheduler.models import Association, Cluster
from scheduler.worker import Worker
from tests.scheduler.conftest import STATE_DIR  # the tests' instance, never the demo's

BENCH_USERS = tuple(f"tk-u{i}" for i in range(10))
SLURM_CONF = STATE_DIR / "etc" / "slurm.conf"  # for Slurm commands run on this machine directly


def cluster_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads((STATE_DIR / "cluster.json").read_text())
    return info


def register_cluster(**fields: Any) -> Cluster:
    """The dev cluster's row: host key pinned, the service account's key, members' run directories
    under the instance's `work_dir` template, certificates signed with the instance's user CA."""
    info = cluster_info()
    settings.SSH_USER_CA_KEY = info["ca_key_path"]  # tests/settings.py already says so; be explicit
    values: dict[str, Any] = {
        "name": info["name"],
        "host": info["host"],
        "port": int(info["port"]),
        "username": info["username"],
        "key_path": info["key_path"],
        "host_key": info["host_key"],
        "default_partition": info["partition"],
        "default_account": "sft",
        "work_dir": info["work_dir"],
        "time_zone": local_time_zone(),
    }
    values.update(fields)
    return Cluster.objects.create(**values)


def give_accounts(
    cluster: Cluster, subteam: Subteam, members: Sequence[Member], account: str = "sft"
) -> list[str]:
    """Map the subteam to a Slurm account and give members[i] the cluster user tk-u<i>; their usernames."""
    if len(members) > len(BENCH_USERS):
        raise ValueError(f"the dev cluster has {len(BENCH_USERS)} bench users, not {len(members)}")
    missing = set(BENCH_USERS) - set(cluster_info().get("member_users", []))
    if missing:
        raise RuntimeError(f"the dev cluster lacks {sorted(missing)}: run scripts/devcluster up again")
    services.set_subteam_account(None, subteam, cluster, account)
    users = []
    for member, username in zip(members, BENCH_USERS, strict=False):
        services.set_cluster_account(None, member, cluster, username)
        users.append(username)
    return users


def add_associations(cluster: Cluster, worker: Worker) -> None:
    """One worker cycle (its association step adds user → account in Slurm); fail if any is missing.
    The worker's claim on the cluster is released, so that another worker may visit it at once."""
    worker.cycle()
    worker.release_claims()
    wrong = Association.objects.filter(cluster=cluster, wanted=True).exclude(state=Association.State.PRESENT)
    if wrong.exists():
        raise RuntimeError(
            f"associations not added: {[(a.username, a.account, a.last_error) for a in wrong]}"
        )


def queued(conn: ssh.Connection, users: Sequence[str]) -> list[str]:
    """Slurm ids of these users' jobs still in squeue."""
    result = conn.run(["squeue", "--noheader", "--user", ",".join(users), "--format", "%i"]).check()
    return result.stdout.split()


def cancel_users(conn: ssh.Connection, users: Sequence[str], timeout: float = 180.0) -> float:
    """scancel every job of these users (as the service account) and wait until squeue has none of
    them; seconds waited."""
    began = time.monotonic()
    for user in users:
        conn.run(["scancel", "--user", user]).check()
    while queued(conn, users):
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"jobs of {', '.join(users)} still queued after {timeout:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - began


def machine_note() -> str:
    """CPUs and load, for the results' header (the dev cluster shares this machine with its slurmd)."""
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    return f"{os.cpu_count()} CPUs, load average {' '.join(load)} at the start"
