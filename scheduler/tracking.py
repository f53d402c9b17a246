"""Job tracking, a step of the worker's cycle: pending and running jobs follow what Slurm says of them.

Per cluster and cycle, two remote commands at most whatever the number of jobs: the visit's one
`squeue` (`Poll.queue`) and, when some jobs left the queue, one batched `sacct` for their end states.
The portal's own work grows with the number of jobs only by reading squeue's answer and one small row
per job:
1. The live jobs' compared columns are read as plain tuples with squeue (`Poll.live`, one query that
   also says whose jobs squeue lists): no model instance, no UUID, no timestamp to convert.
2. Each job sent to Slurm is compared with its squeue entry (`differs`): for a job that did not
   change, a dict lookup and a few string comparisons.
3. Only the jobs that changed or left the queue are read in full (`TRACKED_FIELDS`, one query) and
   written: one conditional UPDATE each, through `transition` when the state changes (with its
   `JobEvent`), a plain UPDATE for a new pending reason or node list.
4. Those that left the queue get their end state from one `sacct` for all of them, once accounting has
   it (it lags squeue by a second or two: the others are asked again next cycle).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from scheduler import slurm
from scheduler.models import Cluster, Job, JobEvent
from scheduler.steps import LiveRow, Poll
from scheduler.transitions import transition

# Exit statuses of `python -m training.*` (training/runner.py).
EXIT_CONFIG = 2
EXIT_CHECKPOINTED = 75

TRACKED_STATES = (Job.State.PENDING, Job.State.RUNNING)
ESTIMATE_SLACK = dt.timedelta(minutes=1)
# The columns of a job that changed: what `_apply_queue_entry`, `_finish` and `transition` read.
TRACKED_FIELDS = (
    "kind",
    "state",
    "subteam_id",
    "cluster_id",
    "slurm_job_id",
    "reason",
    "node_list",
    "gpus",
    "started_at",
    "cancel_requested_at",
    "cancel_requested_by_id",
    "cancel_sent_at",
    "expected_start_at",
    "restarts",
)


def differs(entry: slurm.QueueEntry, row: LiveRow) -> bool:
    """Whether squeue says anything new of a live job (its `Poll.live` row): another state (an end
    state included), another pending reason, a start not yet recorded, or other nodes."""
    _user, _slurm_id, state, reason, node_list, has_started, expected = row
    queued = entry.state
    if queued != state:
        return True
    if queued == Job.State.PENDING:
        if entry.reason != reason or _estimate_moved(entry, expected):
            return True
    elif reason or (not has_started and entry.start is not None):
        return True  # running: a pending reason to clear, or its start to record
    return bool(entry.nodes) and entry.nodes != node_list


def _estimate_moved(entry: slurm.QueueEntry, expected: dt.datetime | None) -> bool:
    """Whether Slurm's start estimate for a pending job changed by more than ESTIMATE_SLACK (the
    backfill scheduler recomputes it every few seconds: seconds of drift are not news)."""
    text = entry.start_text
    if not text.isdigit():
        return expected is not None and entry.start is None
    if expected is None:
        return True
    return abs(int(text) - expected.timestamp()) > ESTIMATE_SLACK.total_seconds()


def tracked_jobs(cluster: Cluster) -> QuerySet[Job]:
    """The jobs tracking follows on this cluster: sent to Slurm, not ended."""
    return Job.objects.filter(cluster=cluster, state__in=TRACKED_STATES).exclude(slurm_job_id="")


def track_jobs(poll: Poll) -> None:
    """Pending and running jobs: their squeue entry, or sacct's record once they left the queue.
    squeue runs every visit, jobs or not: it is also the sign that the controller answers."""
    by_id = {entry.job_id: entry for entry in poll.queue}
    tracked = 0
    moved = []
    for row in poll.live:
        if not row[1] or row[2] not in TRACKED_STATES:
            continue  # not sent to Slurm yet
        tracked += 1
        entry = by_id.get(row[1])
        if entry is None or differs(entry, row):
            moved.append(row[1])
    poll.stats.tracked = tracked
    if not moved:
        return
    leaving: list[Job] = []
    for job in tracked_jobs(poll.cluster).filter(slurm_job_id__in=moved).only(*TRACKED_FIELDS):
        entry = by_id.get(job.slurm_job_id)
        if entry is None or entry.state in slurm.TERMINAL:
            leaving.append(job)
        else:
            poll.stats.transitions += int(_apply_queue_entry(job, entry, poll.cluster))
    if not leaving:
        return
    records = slurm.parse_sacct(
        poll.conn.run(slurm.sacct_command(j.slurm_job_id for j in leaving)).check().stdout
    )
    for job in leaving:
        record = records.get(job.slurm_job_id)
        if record is None or record.state not in slurm.TERMINAL:
            continue  # accounting lags squeue by a second or two: next cycle
        poll.stats.transitions += int(_finish(job, record, poll.cluster))


def _aware(value: dt.datetime | None, cluster: Cluster) -> dt.datetime | None:
    """Slurm's times: epoch seconds (aware already) or, from older output, the cluster's local time."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=cluster.tz)


def _apply_queue_entry(job: Job, entry: slurm.QueueEntry, cluster: Cluster) -> bool:
    new_state = entry.state
    reason = entry.reason if new_state == Job.State.PENDING else ""
    started = _aware(entry.start, cluster) if new_state == Job.State.RUNNING else None
    fields: dict[str, Any] = {}
    if job.reason != reason:
        fields["reason"] = reason
    if entry.nodes and job.node_list != entry.nodes:
        fields["node_list"] = entry.nodes
    if started and job.started_at is None:
        fields["started_at"] = started
    expected = _aware(entry.start, cluster) if new_state == Job.State.PENDING else None
    if new_state == Job.State.PENDING and (
        (expected is None) != (job.expected_start_at is None)
        or (expected and job.expected_start_at and abs(expected - job.expected_start_at) > ESTIMATE_SLACK)
    ):
        fields["expected_start_at"] = expected
    if job.state != new_state:
        event = JobEvent.Kind.STATE
        if new_state == Job.State.RUNNING:
            fields["running_since"] = started or timezone.now()
            if job.started_at is not None:
                # It ran before and runs again: Slurm requeued it (the training resumes from its last
                # checkpoint). The first start stays `started_at`.
                fields.pop("started_at", None)
                fields["restarts"] = job.restarts + 1
                event = JobEvent.Kind.RESTARTED
                reason = f"restart {job.restarts + 1}"
        return transition(job, new_state, expect_from=job.state, event=event, message=reason, **fields)
    if fields:
        # Not a state change (a new pending reason, the nodes): no event, no push.
        fields["updated_at"] = timezone.now()
        if Job.objects.filter(pk=job.pk, state=job.state).update(**fields):
            for name, value in fields.items():
                setattr(job, name, value)
    return False


def _finish(job: Job, record: slurm.AccountingRecord, cluster: Cluster) -> bool:
    reason = ""
    actor = None
    if record.state == Job.State.CANCELLED and record.cancelled_by_uid is not None:
        reason = f"cancelled by uid {record.cancelled_by_uid}"
        if job.cancel_requested_at is not None:
            reason = "cancelled from the portal"
            actor = job.cancel_requested_by  # who asked, whichever cluster user carried it out
    if (
        job.cancel_requested_at is not None
        and job.cancel_sent_at is None
        and record.state != Job.State.CANCELLED
    ):
        # The cancel was asked for, but the job ended before it reached Slurm (no worker ran then).
        reason = (
            f"ended {record.state} before the cancel asked for at "
            f"{job.cancel_requested_at:%Y-%m-%d %H:%M:%S %Z} reached Slurm"
        )
        actor = job.cancel_requested_by
    elif record.state == Job.State.FAILED and record.signal:
        reason = f"killed by signal {record.signal}"
    elif job.is_training and record.exit_code == EXIT_CONFIG:
        reason = "the run's config was refused (the message is the last line of stderr)"
    elif job.is_training and record.exit_code == EXIT_CHECKPOINTED:
        reason = "stopped before its time limit after saving a checkpoint; resubmit to resume from it"
    message = f"exit code {record.exit_code}" if record.exit_code is not None else ""
    if reason:
        message = f"{message}; {reason}" if message else reason
    return transition(
        job,
        record.state,
        expect_from=job.state,
        message=message,
        actor=actor,
        exit_code=record.exit_code,
        exit_signal=record.signal,
        reason=reason,
        node_list=record.nodes or job.node_list,
        started_at=_aware(record.start, cluster) or job.started_at,
        ended_at=_aware(record.end, cluster) or timezone.now(),
        gpus=record.gpus or job.gpus,
        gpu_hours=record.gpu_hours,
    )
