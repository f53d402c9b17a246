"""`manage.py stage_demo_assets`: put a tiny model and data on the dev cluster, and job templates for them.

After it, a demo user opens Jobs → SFT, picks the template "Tiny SFT (CPU smoke test)" and submits: the
run trains on the cluster's CPU in seconds. Needs the `training` extra on the portal host.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from portal.models import Member, Subteam
from scheduler import demo_assets, demo_judge, services
from scheduler.models import Cluster
from scheduler.worker import Worker, connection_for

TINY = {
    "learning_rate": "0.005",
    "max_steps": "40",
    "micro_batch_size": "4",
    "max_length": "64",
    "save_steps": "20",
    "dtype": "fp32",
    "use_cpu": "on",
    "wandb_mode": "offline",
    "nodes": "1",
    "gpus_per_node": "1",
    "time_limit_minutes": "15",
    "lr_scheduler_type": "cosine",
    "warmup_ratio": "0.0",
    "num_train_epochs": "1",
    "launcher": "srun",
    "checkpoint_signal_seconds": "60",
    "requeue": "on",
    "lora_r": "8",
    "lora_alpha": "16",
    "lora_dropout": "0.05",
    "extra_yaml": "training:\n  logging_steps: 1\n",
}


def templates(assets: demo_assets.Assets) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(subteam slug, template name, kind, form fields) of the demo's templates."""
    sft = {**TINY, "model": assets.model, "train_files": assets.sft_data}
    dpo = {
        **TINY,
        "model": assets.model,
        "train_files": assets.dpo_data,
        "dpo_beta": "0.1",
        "max_steps": "20",
        "micro_batch_size": "2",
    }
    evaluate = {
        "model": assets.model,
        "questions": assets.questions,
        "judge_model": "demo-judge",
        "judge_base_url": f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/demo-judge/v1",
        "max_new_tokens": "16",
        "dtype": "fp32",
        "use_cpu": "on",
        "wandb_mode": "offline",
        "nodes": "1",
        "gpus_per_node": "1",
        "time_limit_minutes": "15",
    }
    pipeline: dict[str, Any] = {"include_dpo": "on", "include_eval": "on"}
    for prefix, fields in (
        ("sft", {**sft, "lora": "on"}),
        ("dpo", {**dpo, "model": "", "lora": "on"}),
        ("eval", {**evaluate, "model": ""}),
    ):
        pipeline |= {f"{prefix}-{key}": value for key, value in fields.items()}
    pretrain = {**TINY, "model": assets.model, "train_files": assets.pretrain_data}
    return [
        ("post-training", "Tiny SFT (CPU smoke test)", "sft", sft),
        ("post-training", "Tiny SFT LoRA (CPU smoke test)", "sft", {**sft, "lora": "on"}),
        ("post-training", "Tiny DPO (CPU smoke test)", "dpo", dpo),
        ("post-training", "Tiny MT-Bench (demo judge)", "eval", evaluate),
        ("post-training", "Tiny SFT → DPO → MT-Bench", "pipeline", pipeline),
        ("pretrain-data", "Tiny continued pretraining (CPU)", "pretrain", pretrain),
    ]


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
            Worker(name="stage-demo-assets").refresh_inventory(cluster, conn)  # nodes, for the bookings
        finally:
            conn.close()
        # The demo's evaluation jobs ask the portal's stand-in judge (scheduler/demo_judge.py) with its key.
        key_line = f"export OPENAI_API_KEY={demo_judge.KEY}"
        if key_line not in cluster.env_preamble:
            cluster.env_preamble = f"{cluster.env_preamble.rstrip()}\n{key_line}".strip()
            cluster.save(update_fields=["env_preamble"])
        owner = Member.objects.filter(user__is_superuser=True).first() or Member.objects.first()
        if owner is None:
            raise CommandError("no members: run load_demo first")
        saved = 0
        for slug, name, kind, fields in templates(assets):
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
        from lending import demo as lending_demo

        bookings = lending_demo.load(timezone.localdate())
        self.stdout.write(
            f"Staged the tiny model and data under {assets.root} on {cluster.name}; {saved} templates saved; "
            f"{bookings} GPU bookings added."
        )
