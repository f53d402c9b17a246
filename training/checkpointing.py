"""Resume from the latest complete checkpoint; save one and stop when Slurm sends SIGUSR1."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from training import signals
from training.config import RunConfig

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "adapter_model.safetensors",
)


def is_complete(path: Path) -> bool:
    """Trainer writes trainer_state.json after the weights: a checkpoint cut short by a kill lacks it."""
    return (path / "trainer_state.json").is_file() and any((path / w).exists() for w in _WEIGHTS)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    for _, path in sorted(found, reverse=True):
        if is_complete(path):
            return path
    return None


def resume_from(cfg: RunConfig) -> str | None:
    """``checkpoint.resume``: auto (latest complete checkpoint in output.dir, if any), never, or a path:
    a checkpoint, or an earlier run's output directory (its latest complete checkpoint; none: start)."""
    resume = cfg.checkpoint.resume
    if resume == "never":
        return None
    if resume == "auto":
        path = latest_checkpoint(cfg.output.dir)
        return str(path) if path else None
    if not is_complete(Path(resume)) and not _CHECKPOINT.match(Path(resume).name):
        path = latest_checkpoint(resume)
        return str(path) if path else None
    return resume


class AnnounceCheckpointCallback(TrainerCallback):
    """Print `checkpoint saved: step N <dir>` (stderr) when the trainer saves one, on the main process:
    the portal reads it from the log to show the run's last checkpoint and how far a resume goes back."""

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if state.is_world_process_zero:
            path = Path(args.output_dir or ".") / f"checkpoint-{state.global_step}"
            print(f"checkpoint saved: step {state.global_step} {path}", file=sys.stderr, flush=True)
        return control


class SaveOnSignalCallback(TrainerCallback):
    """After the optimizer step during which SIGUSR1 arrived: save a checkpoint and stop training.

    Under torch.distributed every rank must save at the same step, so the flag is all-reduced (MAX)
    each step: a rank that got the signal a moment later than another still saves at the same step.
    """

    def __init__(self) -> None:
        self.triggered_at: int | None = None

    @property
    def triggered(self) -> bool:
        return self.triggered_at is not None

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> TrainerControl:
        if _any_rank(signals.received(), args):
            control.should_save = True
            control.should_training_stop = True
            self.triggered_at = state.global_step
        return control


def _any_rank(flag: bool, args: TrainingArguments) -> bool:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return flag
    import torch

    tensor = torch.tensor([1 if flag else 0], device=args.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item())


def requeue_slurm_job() -> bool:
    """``scontrol requeue $SLURM_JOB_ID`` (the job must allow requeueing: sbatch --requeue)."""
    job = os.environ.get("SLURM_JOB_ID")
    scontrol = shutil.which("scontrol")
    if not job or not scontrol:
        return False
    # Slurm's own program, found on PATH, with the job id Slurm set for this process.
    result = subprocess.run([scontrol, "requeue", job], check=False, capture_output=True, text=True)  # noqa: S603
    return result.returncode == 0
