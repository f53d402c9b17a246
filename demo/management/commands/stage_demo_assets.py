"""`manage.py stage_demo_assets`: put a tiny model and data on the dev cluster, job templates for them,
and the demo's GPU bookings.

After it, a demo user opens Jobs → SFT, picks the template "Tiny SFT (CPU smoke test)" and submits: the
run trains on the cluster's CPU in seconds. The staged data files are registered as data sets (Data sets),
which the training forms and sweeps pick by name and version. Needs the `training` extra on the portal host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo import assets as demo_assets
from demo import bookings, judge
from demo.management.commands.register_devcluster import read_info
from experiments.models import Dataset
from portal.models import Member, Subteam
from scheduler import services, steps
from scheduler.identity import service_connection as connection_for
from scheduler.models import Cluster, JudgeEndpoint


class Command(BaseCommand):
    help = (
        "Stage a tiny model and data sets on a cluster, save demo job templates that use them, and add the "
        "demo's GPU bookings (they become Slurm reservations)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cluster", default="tanuki-dev", help="Cluster name (default: tanuki-dev)")
        parser.add_argument("--info", type=Path, default=None, help="cluster.json written by devcluster up")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named {options['cluster']}: run register_devcluster first")
        try:
            import transformers  # noqa: F401
        except ImportError as error:
            raise CommandError("the training extra is not installed: pip install -e '.[training]'") from error
        shared = read_info(options["info"]).get("shared_dir", "")
        if not shared:
            raise CommandError("the dev cluster has no shared directory: run scripts/devcluster up again")
        conn = connection_for(cluster)
        try:
            # Under the members' shared directory: every member's job reads the tiny model and data.
            assets = demo_assets.stage(conn, demo_assets.assets_root(shared))
            poll = steps.Poll(cluster, conn, "stage-demo-assets", steps.CycleStats(cluster.name))
            steps.refresh_inventory(poll, force=True)  # nodes, for the bookings
        finally:
            conn.close()
        # The demo's evaluation jobs ask the portal's stand-in judge (demo/judge.py); its key is the
        # portal host's DEMO_JUDGE_KEY, staged for each evaluation as a file only its member reads.
        JudgeEndpoint.objects.update_or_create(
            name="demo-judge",
            defaults={
                "base_url": f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/demo-judge/v1",
                "key_env": judge.KEY_ENV,
            },
        )
        owner = Member.objects.filter(user__is_superuser=True).first() or Member.objects.first()
        if owner is None:
            raise CommandError("no members: run load_demo first")
        saved = 0
        for slug, name, kind, fields in demo_assets.templates(assets):
            subteam = Subteam.objects.filter(slug=slug).first()
            if subteam is None:
                continue
            fields = {**fields, "cluster": str(cluster.pk)}
            services.save_template(
                owner,
                subteam=subteam,
                name=name,
                kind=kind,
                fields=fields,
                description="A tiny Llama trained on the dev cluster's CPU in seconds.",
            )
            saved += 1
        registered = register_datasets(cluster, assets, owner)
        booked = bookings.load(timezone.localdate())
        self.stdout.write(
            f"Staged the tiny model and data under {assets.root} on {cluster.name}; {saved} templates saved; "
            f"{registered} data sets registered; {booked} GPU bookings added."
        )


# (subteam slug, data set name, the staged file, notes): registered as version v1 of each.
DATASETS = (
    ("instruction-data", "tiny-sft-ja", "sft_data", "Chat turns for the tiny SFT (CPU smoke test)."),
    ("post-training", "tiny-dpo-ja", "dpo_data", "Chosen/rejected pairs for the tiny DPO."),
    ("pretrain-data", "tiny-pretrain-ja", "pretrain_data", "Plain text for the tiny pretraining run."),
)


def register_datasets(cluster: Cluster, assets: demo_assets.Assets, owner: Member) -> int:
    """The staged data files as data sets, to be checked by the worker on the cluster (rows, size and
    SHA-256 computed there, as the service account that staged them). Already registered: kept."""
    made = 0
    for slug, name, attribute, notes in DATASETS:
        subteam = Subteam.objects.filter(slug=slug).first()
        if subteam is None:
            continue
        _dataset, created = Dataset.objects.get_or_create(
            name=name,
            version="v1",
            defaults={
                "subteam": subteam,
                "cluster": cluster,
                "path": getattr(assets, attribute),
                "notes": notes,
                "created_by": owner,
                "check_user": cluster.username,
            },
        )
        made += created
    return made
