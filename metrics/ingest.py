"""Ingestion: read new records of a job's W&B run and store them as points, exactly once.

Sources behind one interface, `ingest_job(job, conn) -> points stored`:
- the run file the job writes on the cluster, `<run_dir>/wandb/[offline-]run-<time>-<job uuid>/run-<uuid>.wandb`,
  read over SFTP from the cursor's byte offset (one read per cycle once the file is known);
- the W&B cloud (`metrics.cloud`), for a job that has only a cloud run and when WANDB_API_KEY is set.

`ingest_cluster(cluster, conn)` is the scheduler's cluster hook: running jobs every cycle, ended jobs
until a read brings nothing new, after which the cursor is final and the job is left alone.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from metrics import store, wandb_file
from metrics.models import MetricCursor
from scheduler.models import Job

if TYPE_CHECKING:
    from scheduler.models import Cluster

log = logging.getLogger("metrics.ingest")

STEP_KEY = "train/global_step"
TOKENS_KEY = "train/num_input_tokens_seen"
TOKENS_PER_S_KEY = "perf/tokens_per_s"
JOBS_PER_CYCLE = 50
MAX_RECORD_BYTES = 64 << 20
PUSH_MAX_POINTS = 5000  # more new points than this in one cycle: tell the charts to re-query


class RunFiles(Protocol):
    """What ingestion needs of a connection (scheduler.ssh.Connection has both, over SFTP)."""

    def read_from(self, path: str, offset: int, max_bytes: int = ...) -> bytes: ...

    def listdir(self, path: str) -> list[tuple[str, int, bool]]: ...


def read_bytes() -> int:
    """Bytes read per job per cycle (setting METRICS_READ_BYTES, default 4 MiB)."""
    return int(getattr(settings, "METRICS_READ_BYTES", 4 << 20))


def find_run_file(job: Job, conn: RunFiles) -> str | None:
    """The newest run directory of this job under `<run_dir>/wandb/` and its `.wandb` file."""
    wandb_dir = f"{job.run_dir}/wandb"
    found: list[tuple[str, str]] = []
    for name, _size, is_dir in conn.listdir(wandb_dir):
        if not is_dir or not name.startswith(("offline-run-", "run-")):
            continue
        for run_id in (str(job.id), job.id.hex):
            if name.endswith(f"-{run_id}"):
                # The name carries the start time (YYYYMMDD_HHMMSS): the newest run sorts last.
                found.append((name.removeprefix("offline-"), f"{wandb_dir}/{name}/run-{run_id}.wandb"))
    return max(found)[1] if found else None


def ingest_job(job: Job, conn: RunFiles) -> int:
    """Store the points of the job's run written since the last call; the number stored."""
    cursor, _ = MetricCursor.objects.get_or_create(job=job)
    if cursor.final:
        return 0
    if cursor.source == MetricCursor.Source.CLOUD:
        from metrics import cloud

        return cloud.ingest_job(job)
    if not cursor.path:
        path = find_run_file(job, conn)
        if path is None:
            from metrics import cloud

            return cloud.ingest_job(job) if cloud.available(job) else 0
        MetricCursor.objects.filter(pk=job.pk, path="").update(path=path)
        cursor.path = path
    data = b""
    result = wandb_file.ParseResult(offset=cursor.offset)
    limit = read_bytes()
    while True:
        data = conn.read_from(cursor.path, cursor.offset, limit)
        if not data:
            return 0
        result = wandb_file.parse(data, cursor.offset, summaries=False)
        # A record larger than one read: read more at once (up to a bound), else wait for it.
        if result.offset > cursor.offset or len(data) < limit or limit >= MAX_RECORD_BYTES:
            break
        limit *= 4
    if result.corrupt_chunks:
        log.warning("%s: %d corrupt chunks skipped in %s", job.pk, result.corrupt_chunks, cursor.path)
    if result.offset == cursor.offset:
        return 0
    return store_events(job, cursor, result.events, result.offset)


def store_events(job: Job, cursor: MetricCursor, events: Sequence[wandb_file.Event], new_offset: int) -> int:
    """Advance the cursor from its current offset to `new_offset` and store the events' points, in one
    transaction; nothing is stored when another worker moved the cursor first."""
    points, last_step, exit_code = _points(job, cursor, events)
    with transaction.atomic():
        advanced = MetricCursor.objects.filter(
            pk=cursor.pk, offset=cursor.offset, path=cursor.path, source=cursor.source
        ).update(
            offset=new_offset,
            last_step=last_step,
            points=F("points") + len(points),
            last_tokens=cursor.last_tokens,
            last_time=cursor.last_time,
            exit_code=exit_code,
        )
        if not advanced:
            return 0
        store.add_points(job.pk, points)
        if points:
            from metrics import push

            if len(points) > PUSH_MAX_POINTS:
                # A backlog (a page opened late, a worker catching up): charts re-query instead.
                push.push_job(job, points={}, refresh=True)
            else:
                by_key: dict[str, list[tuple[int, float]]] = defaultdict(list)
                for p in points:
                    by_key[p.key].append((p.step, p.value))
                push.push_job(job, points=dict(by_key))
    cursor.offset = new_offset
    cursor.last_step = last_step
    cursor.exit_code = exit_code
    return len(points)


def _points(
    job: Job, cursor: MetricCursor, events: Sequence[wandb_file.Event]
) -> tuple[list[store.Point], int | None, int | None]:
    """Points of the history rows, at the trainer's global step when the row has one, plus a derived
    tokens/s series. Updates the cursor's tokens/time memory in place (saved with the offset)."""
    points: list[store.Point] = []
    last_step = cursor.last_step
    exit_code = cursor.exit_code
    per_step = tokens_per_step(job)
    for event in events:
        if isinstance(event, wandb_file.Exit):
            exit_code = event.exit_code
            continue
        if not isinstance(event, wandb_file.HistoryRow):
            continue
        step = int(event.values.get(STEP_KEY, event.step))
        when = dt.datetime.fromtimestamp(event.timestamp, dt.UTC) if event.timestamp is not None else None
        points += [store.Point(key, step, value, when) for key, value in event.values.items()]
        last_step = step if last_step is None else max(last_step, step)
        tokens = event.values.get(TOKENS_KEY)
        if tokens is None and per_step and STEP_KEY in event.values:
            tokens = event.values[STEP_KEY] * per_step
        if tokens is None or event.timestamp is None:
            continue
        if cursor.last_tokens is not None and cursor.last_time is not None:
            elapsed = event.timestamp - cursor.last_time
            if elapsed > 0 and tokens >= cursor.last_tokens:
                rate = (tokens - cursor.last_tokens) / elapsed
                points.append(store.Point(TOKENS_PER_S_KEY, step, rate, when))
            elif elapsed <= 0:
                continue  # same instant (a train and an eval row): keep the earlier reference
        cursor.last_tokens, cursor.last_time = tokens, event.timestamp
    return points, last_step, exit_code


def training_config(job: Job) -> dict[str, object]:
    config = (job.parameters or {}).get("config") if isinstance(job.parameters, dict) else None
    training = config.get("training") if isinstance(config, dict) else None
    return training if isinstance(training, dict) else {}


def tokens_per_step(job: Job) -> float | None:
    """Tokens per optimizer step from the run config (an upper bound: padding counts), or None."""
    training = training_config(job)
    factors = [training.get(k) for k in ("micro_batch_size", "gradient_accumulation_steps", "max_length")]
    if not all(isinstance(f, int) and f > 0 for f in factors):
        return None
    total = 1
    for f in factors:
        total *= int(f)  # type: ignore[call-overload]
    return float(total * max(1, job.nodes * job.gpus_per_node))


def ingest_cluster(cluster: Cluster, conn: RunFiles) -> None:
    """Cluster hook: ingest the running jobs, and ended jobs once more until nothing new comes."""
    jobs = list(
        Job.objects.filter(cluster=cluster)
        .filter(Q(state=Job.State.RUNNING) | Q(state__in=list(Job.TERMINAL_STATES), started_at__isnull=False))
        .exclude(metric_cursor__final=True)
        .select_related("cluster")
        .order_by("-updated_at")[:JOBS_PER_CYCLE]
    )
    for job in jobs:
        try:
            got = ingest_job(job, conn)
        except wandb_file.WandbFileError as error:
            log.warning("%s: %s", job.pk, error)
            got = 0
        if job.is_terminal and got == 0:
            MetricCursor.objects.filter(pk=job.pk).update(final=True)
