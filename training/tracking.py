"""Weights & Biases: the run id is the portal job's UUID, grouped and tagged by the Slurm job id.

The run's local directory goes under ``wandb.dir`` (default: output.dir's parent, the job's run
directory) as ``<dir>/wandb/<offline-|>run-<time>-<id>/run-<id>.wandb``, where the portal can find it.
Offline mode (``wandb.mode: offline`` or env ``WANDB_MODE=offline``) needs no network. Only the
global rank-0 process starts a run; transformers' WandbCallback then logs into it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.config import RunConfig, to_dict


@dataclass
class WandbSettings:
    mode: str
    project: str | None
    entity: str | None
    run_id: str | None
    name: str | None
    group: str | None
    tags: list[str] = field(default_factory=list)
    dir: str = "."
    job_type: str | None = None

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"


def resolve(cfg: RunConfig, env: dict[str, str] | None = None) -> WandbSettings:
    """Config first, then the environment (WANDB_MODE, WANDB_RUN_ID, WANDB_PROJECT, ...), then defaults."""
    env = dict(os.environ) if env is None else env
    w = cfg.wandb
    mode = w.mode or env.get("WANDB_MODE") or "disabled"
    if mode not in ("online", "offline", "disabled"):
        mode = (
            "disabled" if mode in ("off", "dryrun-disabled") else "offline" if mode == "dryrun" else "online"
        )
    slurm_job = env.get("SLURM_JOB_ID")
    tags = list(w.tags)
    if slurm_job and f"slurm-{slurm_job}" not in tags:
        tags.append(f"slurm-{slurm_job}")
    if cfg.kind and cfg.kind not in tags:
        tags.append(cfg.kind)
    group = w.group or env.get("WANDB_RUN_GROUP") or (f"slurm-{slurm_job}" if slurm_job else None)
    default_dir = Path(cfg.output.dir).parent if cfg.output.dir else Path.cwd()
    return WandbSettings(
        mode=mode,
        project=w.project or env.get("WANDB_PROJECT"),
        entity=w.entity or env.get("WANDB_ENTITY"),
        run_id=w.run_id or env.get("WANDB_RUN_ID"),
        name=w.name or env.get("WANDB_NAME"),
        group=group,
        tags=tags,
        dir=str(w.dir or env.get("WANDB_DIR") or default_dir),
        job_type=w.job_type or cfg.kind,
    )


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def start(cfg: RunConfig) -> Any | None:
    """Export the settings as WANDB_* variables and, on rank 0 when enabled, start (or resume) the run."""
    settings = resolve(cfg)
    os.environ["WANDB_MODE"] = settings.mode
    for var, value in (
        ("WANDB_PROJECT", settings.project),
        ("WANDB_ENTITY", settings.entity),
        ("WANDB_RUN_ID", settings.run_id),
        ("WANDB_RUN_GROUP", settings.group),
        ("WANDB_DIR", settings.dir),
    ):
        if value:
            os.environ[var] = value
    os.environ.setdefault("WANDB_LOG_MODEL", "false")  # checkpoints stay on the cluster's disk
    if not settings.enabled or not is_main_process():
        return None
    import wandb

    Path(settings.dir).mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=settings.project,
        entity=settings.entity,
        id=settings.run_id,
        name=settings.name,
        group=settings.group,
        tags=settings.tags or None,
        dir=settings.dir,
        job_type=settings.job_type,
        mode=settings.mode,  # type: ignore[arg-type]  # checked against the three modes in resolve()
        resume="allow",  # a requeued job continues the same run
        config=to_dict(cfg),
        settings=wandb.Settings(console="off", silent=True),
    )


def report_to(run: Any | None) -> list[str]:
    return ["wandb"] if run is not None else []


def finish(run: Any | None, exit_code: int = 0) -> None:
    if run is not None:
        run.finish(exit_code=exit_code)
