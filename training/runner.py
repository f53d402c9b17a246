"""What the entry points share: the command line, TrainingArguments from the config, and one training run.

Exit codes: 0 finished; 2 bad config (the message names the key); 75 (EX_TEMPFAIL) stopped by SIGUSR1
after saving a checkpoint, so a resubmitted or requeued job resumes from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training import signals
from training.config import ConfigError, RunConfig, load_config

if TYPE_CHECKING:
    from transformers import Trainer

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_INTERRUPTED = 75

log = logging.getLogger("training")


@dataclass
class RunResult:
    kind: str
    status: str  # completed | interrupted
    global_step: int
    resumed_from: str | None
    output_dir: str
    seconds: float
    log_history: list[dict[str, Any]] = field(default_factory=list)
    requeued: bool = False
    trainer: Any = None  # the Trainer (tests read its model); not written to the summary

    def summary(self) -> dict[str, Any]:
        losses = [h["loss"] for h in self.log_history if "loss" in h]
        return {
            "kind": self.kind,
            "status": self.status,
            "global_step": self.global_step,
            "resumed_from": self.resumed_from,
            "output_dir": self.output_dir,
            "seconds": round(self.seconds, 3),
            "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "requeued": self.requeued,
        }


def training_arguments(cfg: RunConfig, report_to: list[str], has_eval: bool) -> dict[str, Any]:
    """Keyword arguments common to TrainingArguments, SFTConfig and DPOConfig."""
    t, c = cfg.training, cfg.checkpoint
    kwargs: dict[str, Any] = {
        "output_dir": cfg.output.dir,
        "learning_rate": t.learning_rate,
        "num_train_epochs": t.num_train_epochs,
        "max_steps": t.max_steps,
        "per_device_train_batch_size": t.micro_batch_size,
        "per_device_eval_batch_size": t.micro_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "warmup_steps": t.warmup_steps if t.warmup_steps else t.warmup_ratio,
        "weight_decay": t.weight_decay,
        "lr_scheduler_type": t.lr_scheduler_type,
        "max_grad_norm": t.max_grad_norm,
        "seed": t.seed,
        "logging_steps": t.logging_steps,
        "logging_first_step": True,
        "activation_checkpointing": t.gradient_checkpointing,  # transformers 5 name of gradient checkpointing
        "dataloader_num_workers": t.dataloader_num_workers,
        "save_strategy": "steps",
        "save_steps": c.save_steps,
        "save_total_limit": c.save_total_limit,
        "bf16": cfg.precision.dtype == "bf16",
        "fp16": cfg.precision.dtype == "fp16",
        "use_cpu": cfg.precision.use_cpu,
        "report_to": report_to,
        "run_name": cfg.wandb.name,
        "disable_tqdm": True,
        # Logs train/num_input_tokens_seen: the portal shows tokens seen and tokens/s from it.
        "include_num_input_tokens_seen": True,  # one log line per logging step instead of a progress bar in the Slurm log
        "eval_strategy": "steps" if has_eval else "no",
    }
    if has_eval:
        kwargs["eval_steps"] = t.eval_steps or c.save_steps
    return kwargs


def run_training(cfg: RunConfig, build: Callable[[RunConfig, list[str]], Trainer]) -> RunResult:
    """Build the trainer, resume if a checkpoint exists, train, save the final model and a run summary."""
    from training import tracking
    from training.checkpointing import (
        AnnounceCheckpointCallback,
        SaveOnSignalCallback,
        requeue_slurm_job,
        resume_from,
    )

    if cfg.checkpoint.save_on_signal:
        signals.install()
    Path(cfg.output.dir).mkdir(parents=True, exist_ok=True)
    run = tracking.start(cfg)
    exit_code = 1
    try:
        trainer = build(cfg, tracking.report_to(run))
        trainer.add_callback(AnnounceCheckpointCallback())
        callback = SaveOnSignalCallback()
        if cfg.checkpoint.save_on_signal:
            trainer.add_callback(callback)
        resume = resume_from(cfg)
        if resume:
            log.info("resuming from %s", resume)
        started = time.monotonic()
        trainer.train(resume_from_checkpoint=resume)
        seconds = time.monotonic() - started
        status = "interrupted" if callback.triggered else "completed"
        if callback.triggered:
            signals.reset()  # consumed: a later run in this process starts clean
        if status == "completed" and cfg.output.save_final_model:
            trainer.save_model(cfg.output.dir)
        result = RunResult(
            kind=str(cfg.kind),
            status=status,
            global_step=trainer.state.global_step,
            resumed_from=resume,
            output_dir=cfg.output.dir,
            seconds=seconds,
            log_history=list(trainer.state.log_history),
            trainer=trainer,
        )
        exit_code = 0
    finally:
        tracking.finish(run, exit_code)
    if status == "interrupted" and cfg.checkpoint.requeue_on_signal and trainer.is_world_process_zero():
        result.requeued = requeue_slurm_job()
    if trainer.is_world_process_zero():
        (Path(cfg.output.dir) / "run_summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    return result


def slurm_distributed_env(env: dict[str, str]) -> dict[str, str]:
    """torch.distributed's variables for a process that ``srun`` started as one of several tasks.

    Under ``srun --ntasks-per-node=<gpus> python -m training.sft ...`` each task is one rank; the batch
    script exports MASTER_ADDR and MASTER_PORT. Nothing is set when a launcher (torchrun) already set
    RANK, or for a single task.
    """
    if "RANK" in env or int(env.get("SLURM_NTASKS", "1")) < 2 or "SLURM_PROCID" not in env:
        return {}
    return {
        "RANK": env["SLURM_PROCID"],
        "WORLD_SIZE": env["SLURM_NTASKS"],
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
        "LOCAL_WORLD_SIZE": env.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0],
    }


def cli(kind: str, run: Callable[[RunConfig], Any], argv: Sequence[str] | None = None) -> int:
    """``python -m training.<kind> --config run.yaml``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m training.{kind}", description=f"Run one {kind} job from a YAML config."
    )
    parser.add_argument("--config", required=True, help="the run's YAML file")
    args = parser.parse_args(argv)
    if kind != "evaluate":
        signals.install()  # before torch is imported: SIGUSR1's default action ends the process
    os.environ.update(slurm_distributed_env(dict(os.environ)))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        cfg = load_config(args.config, kind)
        result = run(cfg)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if isinstance(result, RunResult):
        print(json.dumps(result.summary()))
        if result.status == "interrupted":
            return EXIT_INTERRUPTED
    return EXIT_OK
