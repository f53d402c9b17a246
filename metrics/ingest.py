"""Ingestion: new records of a job's W&B run stored as points, exactly once. This module only
dispatches: it picks the source for a job, turns what it read into points (`metrics.points`), stores
them (`metrics.store`) and advances the cursor in one transaction, and asks for a push.

The sources, which know nothing of the cursor or the database:
- the run file the job writes on the cluster (`metrics.wandb_file`), found under the job's run directory
  and read over SFTP from the cursor's byte offset (one read per cycle once the file is known, more
  while a run that is behind catches up);
- the W&B cloud (`metrics.cloud`), for a job that has only a cloud run and when WANDB_API_KEY is set;
  the cursor's offset is then the next `_step` to read.

`ingest_cluster(poll)` is the worker's step: running jobs every cycle, ended jobs until a read brings
nothing new, after which the cursor is final and the job is left alone. A visit reads on into runs that
are behind for at most METRICS_INGEST_SECONDS_PER_CYCLE.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F, Q

from metrics import cloud, keys, push, store, wandb_file, watch
from metrics.models import MetricCursor
from metrics.points import RunState, points_of
from metrics.wandb_file import RunFiles
from scheduler import identity
from scheduler.models import Job
from scheduler.steps import Poll

log = logging.getLogger("metrics.ingest")

JOBS_PER_CYCLE = 50
PUSH_MAX_POINTS = 5000  # more new points than this in one chunk: tell the charts to re-query


def ingest_job(job: Job, conn: RunFiles, deadline: float | None = None) -> int:
    """Store the points of the job's run written since the last call; the number stored.

    A run that is behind (a worker that was down, a page opened on a finished run) is read on within
    the call, chunk after chunk, until it is caught up or `deadline` (a `time.monotonic()` value;
    default: now + METRICS_INGEST_SECONDS_PER_CYCLE) has passed (`_from_file`).
    """
    cursor, _ = MetricCursor.objects.get_or_create(job=job)
    if cursor.final:
        return 0
    if cursor.source == MetricCursor.Source.CLOUD:
        return _from_cloud(job, cursor)
    if not cursor.path:
        path = wandb_file.find_run_file(conn, job.run_dir, job.id)
        if path is None:
            return _from_cloud(job, cursor) if cloud.available(job) else 0
        MetricCursor.objects.filter(pk=job.pk, path="").update(path=path)
        cursor.path = path
    if deadline is None:
        deadline = time.monotonic() + keys.seconds_per_cycle()
    return _from_file(job, conn, cursor, deadline)


def _from_file(job: Job, conn: RunFiles, cursor: MetricCursor, deadline: float) -> int:
    """The run file from the cursor's offset on, in chunks, each stored in its own transaction.

    1. The first chunk is METRICS_READ_BYTES: a run that is not behind needs no more (one SFTP read).
    2. Each chunk is stored, and the cursor moved past it, in one transaction (`store_events`): a crash
       loses at most the chunk being stored, and nothing is ever stored twice.
    3. While a read comes back full, the next chunk is twice as large, up to MAX_CHUNK_BYTES and to what
       the rate measured on the last chunk stores in the time left, so a visit ends about on time; when
       that is less than MIN_CHUNK_BYTES (or the last chunk), the next cycle reads on.
    """
    size = keys.read_bytes()
    stored = 0
    while True:
        began, start = time.monotonic(), cursor.offset
        result = _read(conn, cursor.path, start, size)
        if result.corrupt_chunks:
            log.warning("%s: %d corrupt chunks skipped in %s", job.pk, result.corrupt_chunks, cursor.path)
        if result.offset == start:
            return stored
        stored += store_events(job, cursor, result.events, result.offset)
        if cursor.offset != result.offset or not result.more:
            return stored  # another worker stored this chunk first, or caught up
        now = time.monotonic()
        rate = (result.offset - start) / max(now - began, 1e-3)  # bytes per second, read to stored
        affordable = int(rate * (deadline - now))  # what the time left stores at that rate
        if affordable < min(size, keys.MIN_CHUNK_BYTES):
            return stored  # out of time: the next cycle reads on
        size = min(2 * size, keys.MAX_CHUNK_BYTES, affordable)


def _read(conn: RunFiles, path: str, offset: int, size: int) -> wandb_file.ParseResult:
    return wandb_file.read_new(conn, path, offset, size, max(size, keys.MAX_RECORD_BYTES))


def _from_cloud(job: Job, cursor: MetricCursor) -> int:
    """The cloud run's rows from the cursor's next step on; the cursor switches to the cloud first."""
    path = cloud.run_path(job)
    if path is None:
        return 0
    if cursor.source != MetricCursor.Source.CLOUD or cursor.path != path:
        MetricCursor.objects.filter(pk=job.pk, offset=cursor.offset).update(
            source=MetricCursor.Source.CLOUD, path=path
        )
        cursor.source, cursor.path = MetricCursor.Source.CLOUD, path
    rows, next_step = cloud.read_history(path, cursor.offset)
    if next_step == cursor.offset:
        return 0
    return store_events(job, cursor, rows, next_step)


def store_events(job: Job, cursor: MetricCursor, events: Sequence[wandb_file.Event], new_offset: int) -> int:
    """Advance the cursor from its current offset to `new_offset` and store the events' points, in one
    transaction; nothing is stored when another worker moved the cursor first."""
    before = RunState(cursor.last_step, cursor.exit_code, cursor.last_tokens, cursor.last_time)
    points, after = points_of(events, before, keys.tokens_per_step(job))
    count = len(points)
    with transaction.atomic():
        advanced = MetricCursor.objects.filter(
            pk=cursor.pk, offset=cursor.offset, path=cursor.path, source=cursor.source
        ).update(
            offset=new_offset,
            last_step=after.last_step,
            points=F("points") + count,
            last_tokens=after.last_tokens,
            last_time=after.last_time,
            exit_code=after.exit_code,
        )
        if not advanced:
            return 0
        store.add_points(job.pk, points)
        watch.observe(job, points, events)  # a loss spike or NaN: recorded with the chunk, told once
        if count > PUSH_MAX_POINTS:
            # A backlog (a page opened late, a worker catching up): charts re-query instead.
            push.push_job(job, points={}, refresh=True)
        elif count:
            push.push_job(job, points=points.pairs())
    cursor.offset = new_offset
    cursor.last_step, cursor.exit_code = after.last_step, after.exit_code
    cursor.last_tokens, cursor.last_time = after.last_tokens, after.last_time
    return count


def ingest_cluster(poll: Poll) -> None:
    """Worker step: ingest the running jobs, and ended jobs once more until nothing new comes. Each job
    gets one read; runs that are behind read on while the visit's METRICS_INGEST_SECONDS_PER_CYCLE
    last."""
    deadline = time.monotonic() + keys.seconds_per_cycle()
    jobs = list(
        Job.objects.filter(cluster=poll.cluster)
        .filter(Q(state=Job.State.RUNNING) | Q(state__in=list(Job.TERMINAL_STATES), started_at__isnull=False))
        .exclude(metric_cursor__final=True)
        .select_related("cluster")
        .order_by("-updated_at")[:JOBS_PER_CYCLE]
    )
    for job in jobs:
        try:
            conn = poll.for_job(job)  # the run directory is the member's own (0700)
        except identity.AccountError:
            continue  # read once the member's login works again; their account says why
        try:
            got = ingest_job(job, conn, deadline)
        except wandb_file.WandbFileError as error:
            log.warning("%s: %s", job.pk, error)
            got = 0
        if job.is_terminal and got == 0:
            MetricCursor.objects.filter(pk=job.pk).update(final=True)
