"""The W&B cloud as a metrics source, for a job whose run exists only there (no run file on the cluster).

Used when WANDB_API_KEY is set and the job's run path is known: `parameters["wandb_run_path"]`
("entity/project/run_id"), else the run config's `wandb.entity`/`wandb.project` (or WANDB_ENTITY /
WANDB_PROJECT) with the job's UUID as run id. `read_history` reads
`wandb.Api().run(path).scan_history(min_step=…)` from a given `_step` on and returns the rows as the
same events as the run file's; `metrics.ingest` stores them with the cursor's `offset` as the next
`_step` to read, so the exactly-once rule is the same.
"""

from __future__ import annotations

import math
import os
from typing import Any, Protocol

from metrics import wandb_file
from scheduler.models import Job

ROWS_PER_CYCLE = 5000


class CloudRun(Protocol):
    def scan_history(
        self, keys: Any = None, page_size: int = ..., min_step: Any = None, max_step: Any = None
    ) -> Any: ...


class CloudApi(Protocol):
    def run(self, path: str = "") -> CloudRun: ...


def configured() -> bool:
    return bool(os.environ.get("WANDB_API_KEY"))


def run_path(job: Job) -> str | None:
    params = job.parameters if isinstance(job.parameters, dict) else {}
    explicit = params.get("wandb_run_path")
    if isinstance(explicit, str) and explicit.count("/") == 2:
        return explicit
    config = params.get("config")
    wandb_cfg = config.get("wandb") if isinstance(config, dict) else None
    wandb_cfg = wandb_cfg if isinstance(wandb_cfg, dict) else {}
    if wandb_cfg.get("mode") not in (None, "online"):
        return None
    entity = wandb_cfg.get("entity") or os.environ.get("WANDB_ENTITY")
    project = wandb_cfg.get("project") or os.environ.get("WANDB_PROJECT")
    if not entity or not project:
        return None
    return f"{entity}/{project}/{wandb_cfg.get('run_id') or job.id}"


def available(job: Job) -> bool:
    return configured() and run_path(job) is not None


def default_api() -> CloudApi:
    import wandb

    return wandb.Api(timeout=20)


def read_history(
    path: str, min_step: int, api: CloudApi | None = None
) -> tuple[list[wandb_file.HistoryRow], int]:
    """The run's rows from `_step` `min_step` on (at most ROWS_PER_CYCLE steps), as history rows of
    their numeric values, and the next step to read (`min_step` when there was nothing new)."""
    run = (api or default_api()).run(path)
    rows: list[wandb_file.HistoryRow] = []
    next_step = min_step
    for row in run.scan_history(min_step=min_step, max_step=min_step + ROWS_PER_CYCLE):
        step = int(row.get("_step", next_step))
        if step < min_step:
            continue
        values = {
            key: float(value)
            for key, value in row.items()
            if not key.startswith("_")
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        }
        timestamp = row.get("_timestamp")
        rows.append(
            wandb_file.HistoryRow(
                step=step,
                values=values,
                timestamp=float(timestamp) if isinstance(timestamp, int | float) else None,
            )
        )
        next_step = max(next_step, step + 1)
    return rows, next_step
