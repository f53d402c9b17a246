"""The W&B cloud as a metrics source, for a job whose run exists only there (no run file on the cluster).

Used when WANDB_API_KEY is set and the job's run path is known: `parameters["wandb_run_path"]`
("entity/project/run_id"), else the run config's `wandb.entity`/`wandb.project` (or WANDB_ENTITY /
WANDB_PROJECT) with the job's UUID as run id. Reads `wandb.Api().run(path).scan_history(min_step=…)`
from the cursor, whose `offset` here is the next W&B `_step` to read; points go through the same
`ingest.store_events` as the file source, so the exactly-once rule is the same.
"""

from __future__ import annotations

import math
import os
from typing import Any, Protocol

from metrics import wandb_file
from metrics.models import MetricCursor
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


def ingest_job(job: Job, api: CloudApi | None = None) -> int:
    """Store the cloud run's rows from the cursor's next step on; the number of points stored."""
    from metrics.ingest import store_events

    path = run_path(job)
    if path is None:
        return 0
    cursor, _ = MetricCursor.objects.get_or_create(job=job)
    if cursor.final:
        return 0
    if cursor.source != MetricCursor.Source.CLOUD or cursor.path != path:
        MetricCursor.objects.filter(pk=job.pk, offset=cursor.offset).update(
            source=MetricCursor.Source.CLOUD, path=path
        )
        cursor.source, cursor.path = MetricCursor.Source.CLOUD, path
    run = (api or default_api()).run(path)
    events: list[wandb_file.Event] = []
    next_step = cursor.offset
    for row in run.scan_history(min_step=cursor.offset, max_step=cursor.offset + ROWS_PER_CYCLE):
        step = int(row.get("_step", next_step))
        if step < cursor.offset:
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
        events.append(
            wandb_file.HistoryRow(
                step=step,
                values=values,
                timestamp=float(timestamp) if isinstance(timestamp, int | float) else None,
            )
        )
        next_step = max(next_step, step + 1)
    if next_step == cursor.offset:
        return 0
    return store_events(job, cursor, events, next_step)
