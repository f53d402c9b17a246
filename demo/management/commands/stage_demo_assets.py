"""`manage.py stage_demo_assets`: put a tiny model and data on the dev cluster, job templates for them,
and the demo's GPU bookings.

After it, a demo user opens Jobs → SFT, picks the template "Tiny SFT (CPU smoke test)" and submits: the
run trains on the cluster's CPU in seconds. Needs the `training` extra on the portal host.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo import assets as demo_assets
from demo import bookings, judge
from portal.models import Member, Subteam
from scheduler import services, steps
from scheduler.identity import service_connection as connection_for
from scheduler.models import Cluster


class Command(BaseCommand):
    help = (
        "Stage a tiny model and data sets on a cluster, save demo job templates that use them, and add the "
        "demo's GPU bookings (they become Slurm reservations)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cluster", default="tanuki-dev", help="Cluster name (default: tanuki-dev)")

    def handle(self, *args: Any, **options: Any) -> None:
        cluster = Cluster.objects.filter(name=options["cluster"]).first()
        if cluster is None:
            raise CommandError(f"no cluster named {options['cluster']}: run register_devcluster first")
        try:
            import transformers  # noqa: F401
        except ImportError as error:
            raise CommandError("the training extra is not installed: pip install -e '.[training]'") from error
        conn = connection_for(cluster)
        try:
            assets = demo_assets.stage(conn, demo_assets.assets_root(cluster.work_dir))
            poll = steps.Poll(cluster, conn, "stage-demo-assets", steps.CycleStats(cluster.name))
            steps.refresh_inventory(poll, force=True)  # nodes, for the bookings
        finally:
            conn.close()
        # The demo's evaluation jobs ask the portal's stand-in judge (demo/judge.py) with its key.
        key_line = f"export OPENAI_API_KEY={judge.KEY}"
        if key_line not in cluster.env_preamble:
            cluster.env_preamble = f"{cluster.env_preamble.rstrip()}\n{key_line}".strip()
            cluster.save(update_fields=["env_preamble"])
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
        booked = bookings.load(timezone.localdate())
        self.stdout.write(
            f"Staged the tiny model and data under {assets.root} on {cluster.name}; {saved} templates saved; "
            f"{booked} GPU bookings added."
        )
