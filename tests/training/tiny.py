"""A tiny Llama and a byte-level BPE tokenizer made on the spot, and the small data sets the tests train on.

Nothing is downloaded: the tokenizer is trained with `tokenizers` on this module's own text, the model
is a randomly initialised LlamaForCausalLM (about 0.1M parameters) built from a LlamaConfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from training.tiny import (  # noqa: F401 - re-exported for the tests
    CHAT_TEMPLATE,
    DPO_ROWS,
    PRETRAIN_TEXTS,
    SFT_PAIRS,
    SPECIAL,
    dpo_rows,
    make_tiny_model,
    pretrain_rows,
    sft_rows,
    write_jsonl,
)

REPO = Path(__file__).resolve().parents[2]


def base_config(
    model_dir: Path, out_dir: Path, train_file: Path, **sections: dict[str, Any]
) -> dict[str, Any]:
    """A CPU/fp32 config for the tiny model; ``sections`` update (one level deep) the defaults."""
    cfg: dict[str, Any] = {
        "model": {"name_or_path": str(model_dir)},
        "data": {"train_files": [str(train_file)]},
        "training": {
            "learning_rate": 5e-3,
            "max_steps": 12,
            "micro_batch_size": 8,
            "logging_steps": 1,
            "max_length": 64,
            "seed": 0,
        },
        "precision": {"dtype": "fp32", "use_cpu": True},
        "output": {"dir": str(out_dir)},
        "checkpoint": {"save_steps": 1000},
        "wandb": {"mode": "disabled"},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def offline_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in (
        "WANDB_RUN_ID",
        "WANDB_MODE",
        "WANDB_PROJECT",
        "WANDB_DIR",
        "SLURM_JOB_ID",
        "WANDB_RUN_GROUP",
    ):
        env.pop(var, None)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    env.update(extra)
    return env


def run_entry_point(
    module: str, config: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``python -m training.<module> --config <config>`` in a fresh process, as on a compute node."""
    return subprocess.run(
        [sys.executable, "-m", f"training.{module}", "--config", str(config)],
        cwd=REPO,
        env=env or offline_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def log_history(checkpoint_dir: Path) -> list[dict[str, Any]]:
    state = json.loads((checkpoint_dir / "trainer_state.json").read_text())
    history: list[dict[str, Any]] = state["log_history"]
    return history
