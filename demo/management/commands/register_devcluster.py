"""`manage.py register_devcluster`: register the dev cluster started by `scripts/devcluster up`."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from portal.models import Member, Subteam
from scheduler import services
from scheduler.models import Cluster

DEFAULT_INFO = Path(os.environ.get("DEVCLUSTER_DIR", "/var/lib/tanuki-devcluster")) / "cluster.json"


def read_info(path: Path | None = None) -> dict[str, Any]:
    path = path or DEFAULT_INFO
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read {path}: {error}. Run scripts/devcluster up first.") from error
    return info


def local_time_zone() -> str:
    """The machine's own zone (the dev cluster's Slurm prints times in it). Not $TZ: Django sets that
    to the portal's TIME_ZONE."""
    target = os.path.realpath("/etc/localtime")
    if "/zoneinfo/" in target:
        return target.split("/zoneinfo/", 1)[1]
    try:
        return Path("/etc/timezone").read_text().strip() or "UTC"
    except OSError:
        return "UTC"


def local_python_preamble() -> str:
    """Job preamble for the dev cluster: its nodes are this machine, so jobs use the portal's own Python
    environment (with the `training` extra) and this checkout's `training` package; nothing from a hub."""
    bin_dir = Path(sys.executable).parent
    repo = Path(__file__).resolve().parents[3]
    return "\n".join(
        [
            f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"',
            f"export PYTHONPATH={shlex.quote(str(repo))}",
            "export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false",
            "export OMP_NUM_THREADS=1",
        ]
    )


def allow_local_python() -> None:
    """Let the dev cluster's user run this Python and read this checkout (scripts/devcluster allow)."""
    repo = Path(__file__).resolve().parents[3]
    result = subprocess.run(  # noqa: S603 - our own script, with paths we resolved
        [str(repo / "scripts" / "devcluster"), "allow", os.path.realpath(sys.executable), str(repo)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise CommandError(f"scripts/devcluster allow failed: {result.stderr.strip()[-500:]}")


class Command(BaseCommand):
    help = "Create or update the Cluster for the dev cluster, with its host key pinned."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--info", type=Path, default=DEFAULT_INFO, help="cluster.json written by devcluster up"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        info = read_info(options["info"])
        cluster, created = Cluster.objects.update_or_create(
            name=info["name"],
            defaults={
                "host": info["host"],
                "port": int(info["port"]),
                "username": info["username"],
                "key_path": info["key_path"],
                "host_key": info["host_key"],
                "default_partition": info.get("partition", "gpu"),
                "default_account": "",
                "auth_mode": Cluster.AuthMode.CERTIFICATE,
                "work_dir": info["work_dir"],
                "time_zone": local_time_zone(),
                "env_preamble": local_python_preamble(),
                "is_active": True,
                "status": Cluster.Status.UNKNOWN,
                "inventory_at": None,
            },
        )
        cluster.full_clean()
        accounts, people = self.identities(cluster, info)
        if os.geteuid() == 0:
            allow_local_python()
        verb = "Registered" if created else "Updated"
        self.stdout.write(
            f"{verb} cluster {cluster.name}: {cluster.username}@{cluster.host}:{cluster.port}, "
            f"host key {info.get('host_key_fingerprint', '')} pinned; {accounts} subteams mapped to Slurm "
            f"accounts; jobs of {', '.join(people) or 'nobody'} run as their own cluster users"
        )

    def identities(self, cluster: Cluster, info: dict[str, Any]) -> tuple[int, list[str]]:
        """Each demo subteam's Slurm account (the dev cluster has one per slug) and, for each demo member
        the dev cluster has a user for (`tk-<username>`), their cluster account."""
        slurm_accounts = set(info.get("accounts", []))
        mapped = 0
        for subteam in Subteam.objects.filter(slug__in=slurm_accounts):
            services.set_subteam_account(None, subteam, cluster, subteam.slug)
            mapped += 1
        users = set(info.get("member_users", []))
        people = []
        for member in Member.objects.select_related("user").order_by("user__username"):
            username = f"tk-{member.user.get_username()}"
            if username in users:
                services.set_cluster_account(None, member, cluster, username)
                people.append(member.user.get_username())
        return mapped, people
