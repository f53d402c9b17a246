"""A tiny model and data sets staged on a cluster, so that a training job can run from the form at once,
and the demo's job templates that use them.

`stage(conn, root)` builds a tiny Llama with its tokenizer (training/tiny.py: made on the spot, nothing
downloaded) and small pretraining, SFT, DPO and MT-Bench question files (demo/data/mt_bench_questions.yaml),
and writes them under `root` on the cluster over SFTP. The demo stages them on the dev cluster
(`manage.py stage_demo_assets`); the tests that run real training jobs there use the same files. Needs
the `training` extra on the portal host.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo import datafiles
from scheduler import ssh


@dataclass
class Assets:
    """Where the staged files are on the cluster."""

    root: str

    @property
    def model(self) -> str:
        return f"{self.root}/tiny-llama"

    @property
    def pretrain_data(self) -> str:
        return f"{self.root}/data/pretrain.jsonl"

    @property
    def sft_data(self) -> str:
        return f"{self.root}/data/sft.jsonl"

    @property
    def dpo_data(self) -> str:
        return f"{self.root}/data/dpo.jsonl"

    @property
    def questions(self) -> str:
        return f"{self.root}/mt_bench/question.jsonl"


def assets_root(work_dir: str) -> str:
    return f"{work_dir.rstrip('/')}/assets"


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def build(directory: Path) -> Path:
    """The model and data files in a local directory, laid out as on the cluster."""
    from training import tiny

    tiny.make_tiny_model(directory / "tiny-llama")
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / "mt_bench").mkdir(parents=True, exist_ok=True)
    (directory / "data" / "pretrain.jsonl").write_bytes(_jsonl(tiny.pretrain_rows()))
    (directory / "data" / "sft.jsonl").write_bytes(_jsonl(tiny.sft_rows()))
    (directory / "data" / "dpo.jsonl").write_bytes(_jsonl(tiny.dpo_rows()))
    questions = datafiles.read("mt_bench_questions.yaml")  # one per category, FastChat's format
    (directory / "mt_bench" / "question.jsonl").write_bytes(_jsonl(questions))
    return directory


def stage(conn: ssh.Connection, root: str) -> Assets:
    """Build the assets and write them under `root` on the cluster: a directory the members' group
    reads (the dev cluster's shared directory), so every member's job can use them."""
    with tempfile.TemporaryDirectory(prefix="tanuki-assets-") as tmp:
        local = build(Path(tmp))
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            relative = path.relative_to(local).as_posix()
            conn.write_file(f"{root}/{relative}", path.read_bytes(), mode=0o640, dir_mode=0o2750)
    return Assets(root)


# The form fields of a run that trains the tiny model on a CPU in seconds.
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


def templates(assets: Assets) -> list[tuple[str, str, str, dict[str, Any]]]:
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
        "judge_endpoint": "demo-judge",
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
