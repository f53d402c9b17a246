"""The scheduler loop: submits queued jobs, tracks their state, reads their logs, refreshes inventory.

Per cluster and cycle, tracking costs two remote commands whatever the number of jobs: one `squeue`
for everything of ours still queued or running, one batched `sacct` for what left the queue. Each
submission adds one round trip (`mkdir -p … && sbatch --parsable`, script on stdin).

Crash safety of a submission:
1. The job is claimed with a conditional UPDATE (two workers never take the same row).
2. `submit_attempted_at` is committed *before* sbatch runs.
3. sbatch runs; the Slurm id is committed.
A worker killed between 2 and 3 leaves a job with `submit_attempted_at` and no Slurm id; the next
cycle looks for its UUID (job name / comment) in squeue and sacct and adopts it instead of
submitting again. Only a job found nowhere after `ADOPT_GRACE` is submitted again.
"""

from __future__ import annotations

import codecs
import datetime as dt
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from scheduler import hooks, slurm, ssh
from scheduler.models import Cluster, Job, JobEvent, JobLogChunk, Node, Partition

log = logging.getLogger(__name__)

ADOPT_GRACE = dt.timedelta(seconds=30)
CLAIM_LEASE = dt.timedelta(seconds=120)
INVENTORY_EVERY = dt.timedelta(seconds=30)
LOG_BYTES_PER_CYCLE = 256 * 1024
LOG_JOBS_PER_CYCLE = 50
FAST_INTERVAL = 2.0
SLOW_INTERVAL = 30.0
# sbatch failures that say nothing about the job itself: the controller was unreachable or busy.
TRANSIENT_SBATCH_ERRORS = (
    "Unable to contact slurm controller",
    "Socket timed out",
    "Slurm temporarily unavailable",
    "Zero Bytes were transmitted or received",
    "Slurm backup controller in standby mode",
)


@dataclass
class CycleStats:
    cluster: str
    commands: int = 0
    sftp_ops: int = 0
    submitted: int = 0
    adopted: int = 0
    transitions: int = 0
    cancelled: int = 0
    log_bytes: int = 0
    tracked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def did_something(self) -> bool:
        return bool(self.submitted or self.adopted or self.transitions or self.cancelled or self.log_bytes)


def connection_for(cluster: Cluster) -> ssh.Connection:
    return ssh.Connection(
        host=cluster.host,
        port=cluster.port,
        username=cluster.username,
        key_path=cluster.private_key_file(),
        host_key=cluster.host_key,
    )


def _aware(value: dt.datetime | None, cluster: Cluster) -> dt.datetime | None:
    """Slurm's times: epoch seconds (aware already) or, from older output, the cluster's local time."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=cluster.tz)


def _uuid_from(comment: str, name: str) -> uuid.UUID | None:
    for text, prefix in ((comment, "tanuki:"), (name, "tanuki-")):
        if text.startswith(prefix):
            try:
                return uuid.UUID(text[len(prefix) :].strip())
            except ValueError:
                continue
    return None


# Exit statuses of `python -m training.*` (training/runner.py).
EXIT_CONFIG = 2
EXIT_CHECKPOINTED = 75


class Worker:
    def __init__(self, name: str | None = None, pool: ssh.Pool | None = None) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.pool = pool or ssh.pool
        self.last_stats: dict[int, CycleStats] = {}

    # --- the loop ---------------------------------------------------------------------------------

    def run(self, stop: threading.Event, wakeup: threading.Event | None = None) -> None:
        interval = FAST_INTERVAL
        while not stop.is_set():
            try:
                busy = self.cycle()
            except Exception:  # never let one bad cycle end the loop
                log.exception("scheduler cycle failed")
                busy = False
            interval = FAST_INTERVAL if busy else min(SLOW_INTERVAL, interval * 1.5)
            if wakeup is not None:
                if wakeup.wait(interval):
                    wakeup.clear()
                    interval = FAST_INTERVAL
            else:
                stop.wait(interval)
        self.release_claims()

    def cycle(self) -> bool:
        """One pass over every active cluster. True when there is work in flight (poll again soon)."""
        busy = False
        for cluster in Cluster.objects.filter(is_active=True):
            if not self._claim_cluster(cluster):
                continue
            stats = self.poll_cluster(cluster)
            self.last_stats[cluster.pk] = stats
            busy = busy or stats.did_something or stats.tracked > 0
        hooks.run_loop_hooks()
        return busy

    def _claim_cluster(self, cluster: Cluster) -> bool:
        now = timezone.now()
        return bool(
            Cluster.objects.filter(pk=cluster.pk)
            .filter(
                Q(poll_claimed_until__isnull=True)
                | Q(poll_claimed_until__lt=now)
                | Q(poll_claimed_by=self.name)
            )
            .update(poll_claimed_by=self.name, poll_claimed_until=now + CLAIM_LEASE)
        )

    def release_claims(self) -> None:
        Cluster.objects.filter(poll_claimed_by=self.name).update(poll_claimed_by="", poll_claimed_until=None)
        Job.objects.filter(claimed_by=self.name).update(claimed_by="", claimed_until=None)

    # --- one cluster --------------------------------------------------------------------------------

    def poll_cluster(self, cluster: Cluster) -> CycleStats:
        stats = CycleStats(cluster=cluster.name)
        try:
            conn = self.pool.connect(cluster.pk, connection_for(cluster))
        except ssh.HostKeyMismatch as error:
            self._mark(cluster, Cluster.Status.HOST_KEY_MISMATCH, str(error))
            stats.errors.append(str(error))
            return stats
        except (ssh.SlurmError, FileNotFoundError) as error:
            self._mark(cluster, Cluster.Status.UNREACHABLE, str(error))
            stats.errors.append(str(error))
            return stats
        commands_before, sftp_before = conn.commands_run, conn.sftp_ops
        try:
            if cluster.inventory_at is None or timezone.now() - cluster.inventory_at > INVENTORY_EVERY:
                self.refresh_inventory(cluster, conn)
            queue = slurm.parse_squeue(conn.run(slurm.squeue_command(cluster.username)).check().stdout)
            self.submit_pending(cluster, conn, queue, stats)
            self.track(cluster, conn, queue, stats)
            self.send_cancels(cluster, conn, stats)
            self.read_logs(cluster, conn, stats)
            self._mark(cluster, Cluster.Status.REACHABLE, "")
            hooks.run_cluster_hooks(cluster, conn)
        except ssh.SlurmError as error:
            log.warning("cluster %s: %s", cluster.name, error)
            stats.errors.append(str(error))
            status = (
                Cluster.Status.UNREACHABLE
                if isinstance(error, ssh.ClusterUnreachable)
                else Cluster.Status.REACHABLE
            )
            self._mark(cluster, status, str(error))
        finally:
            stats.commands = conn.commands_run - commands_before
            stats.sftp_ops = conn.sftp_ops - sftp_before
        return stats

    def _mark(self, cluster: Cluster, status: str, error: str) -> None:
        fields: dict[str, object] = {"status": status, "last_error": error[:2000]}
        if status == Cluster.Status.REACHABLE:
            fields["last_contact_at"] = timezone.now()
        Cluster.objects.filter(pk=cluster.pk).update(**fields)
        for name, value in fields.items():
            setattr(cluster, name, value)

    # --- inventory ----------------------------------------------------------------------------------

    def refresh_inventory(self, cluster: Cluster, conn: ssh.Connection) -> None:
        result = conn.run_shell(ssh.chain_commands(*slurm.inventory_commands())).check()
        nodes, partitions = slurm.parse_inventory(result.stdout)
        now = timezone.now()
        with transaction.atomic():
            for info in nodes:
                Node.objects.update_or_create(
                    cluster=cluster,
                    name=info.name,
                    defaults={
                        "state": info.state,
                        "reason": info.reason[:500],
                        "partitions": ",".join(info.partitions),
                        "gpus_total": info.gpus_total,
                        "gpus_alloc": info.gpus_alloc,
                        "cpus_total": info.cpus_total,
                        "cpus_alloc": info.cpus_alloc,
                        "memory_mb": info.memory_mb,
                        "unavailable": info.unavailable,
                        "updated_at": now,
                    },
                )
            Node.objects.filter(cluster=cluster).exclude(name__in=[n.name for n in nodes]).delete()
            for part in partitions:
                Partition.objects.update_or_create(
                    cluster=cluster,
                    name=part.name,
                    defaults={
                        "state": part.state,
                        "is_default": part.is_default,
                        "max_time_minutes": part.max_time_minutes,
                        "default_time_minutes": part.default_time_minutes,
                        "nodes": part.nodes[:500],
                        "total_nodes": part.total_nodes,
                        "updated_at": now,
                    },
                )
            Partition.objects.filter(cluster=cluster).exclude(name__in=[p.name for p in partitions]).delete()
            Cluster.objects.filter(pk=cluster.pk).update(inventory_at=now)
            cluster.inventory_at = now

    # --- submission ---------------------------------------------------------------------------------

    def _claim_job(self, job: Job) -> bool:
        now = timezone.now()
        return bool(
            Job.objects.filter(pk=job.pk, state=Job.State.SUBMITTING)
            .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(claimed_by=self.name))
            .update(claimed_by=self.name, claimed_until=now + CLAIM_LEASE)
        )

    def submit_pending(
        self, cluster: Cluster, conn: ssh.Connection, queue: list[slurm.QueueEntry], stats: CycleStats
    ) -> None:
        waiting = list(
            Job.objects.filter(cluster=cluster, state=Job.State.SUBMITTING)
            .select_related("depends_on", "cluster", "subteam")
            .order_by("created_at")
        )
        if not waiting:
            return
        in_queue = {_uuid_from(e.comment, e.name): e.job_id for e in queue}
        # Jobs whose earlier attempt may have reached Slurm: find them before anything is resubmitted.
        attempted = [j for j in waiting if j.submit_attempted_at is not None]
        found: dict[uuid.UUID, str] = {j.id: in_queue[j.id] for j in attempted if j.id in in_queue}
        missing = [j for j in attempted if j.id not in found]
        if missing:
            result = conn.run(slurm.sacct_by_name_command(j.slurm_name for j in missing)).check()
            for record in slurm.parse_sacct(result.stdout).values():
                job_uuid = _uuid_from(record.comment, record.name)
                if job_uuid is not None:
                    found[job_uuid] = record.job_id
        for job in waiting:
            if not self._claim_job(job):
                continue
            if job.id in found:
                self._adopt(job, found[job.id])
                stats.adopted += 1
                continue
            if job.submit_attempted_at is not None and timezone.now() - job.submit_attempted_at < ADOPT_GRACE:
                continue  # accounting may lag a few seconds: look again before submitting twice
            if job.cancel_requested_at is not None:
                # Cancelled while an earlier attempt was in doubt, and that attempt never reached Slurm.
                self._finish_unsubmitted(job, "Cancelled before it reached the cluster.")
                stats.transitions += 1
                continue
            dependency = job.depends_on
            dep_args: list[str] = []
            if dependency is not None:
                if dependency.is_terminal and not dependency.succeeded:
                    self._finish_unsubmitted(job, f"{dependency.name} ended {dependency.state}; not run.")
                    stats.transitions += 1
                    continue
                if not dependency.is_terminal:
                    if not dependency.slurm_job_id:
                        continue  # submitted once the job it waits for has a Slurm id
                    dep_args = [f"--dependency=afterok:{dependency.slurm_job_id}"]
            self._submit(job, conn, dep_args, stats)

    def _submit(self, job: Job, conn: ssh.Connection, dep_args: list[str], stats: CycleStats) -> None:
        # Conditional: a job cancelled (cancel_job) since it was claimed is not sent.
        if not Job.objects.filter(pk=job.pk, state=Job.State.SUBMITTING, claimed_by=self.name).update(
            submit_attempted_at=timezone.now()
        ):
            return
        if job.config_yaml:
            # The run's config goes next to the script before sbatch (same transport, SFTP).
            conn.write_file(job.config_path, job.config_yaml.encode())
        command = ssh.chain_commands(["mkdir", "-p", job.run_dir], ["sbatch", "--parsable", *dep_args])
        try:
            result = conn.run_shell(command, stdin=job.script.encode())
        except ssh.ClusterUnreachable:
            raise  # the attempt stays recorded; the next cycle adopts or retries
        if not result.ok:
            message = (result.stderr or result.stdout).strip()[:500] or f"sbatch exited {result.exit_status}"
            if any(text in message for text in TRANSIENT_SBATCH_ERRORS):
                # The controller is down or slow: the job may or may not be queued. It stays
                # `submitting` with its attempt recorded, so the next cycles adopt it or send it again.
                raise ssh.SlurmError(f"sbatch for {job.slurm_name}: {message}")
            self._finish_unsubmitted(job, message, state=Job.State.FAILED)
            stats.transitions += 1
            return
        slurm_id = slurm.parse_sbatch(result.stdout)
        now = timezone.now()
        with transaction.atomic():
            Job.objects.filter(pk=job.pk).update(
                slurm_job_id=slurm_id,
                state=Job.State.PENDING,
                submitted_at=now,
                updated_at=now,
                claimed_by="",
                claimed_until=None,
            )
            JobEvent.objects.create(
                job=job,
                kind=JobEvent.Kind.SENT,
                from_state=Job.State.SUBMITTING,
                to_state=Job.State.PENDING,
                message=f"Slurm job {slurm_id}",
            )
            hooks.state_changed(job, Job.State.SUBMITTING, Job.State.PENDING)
        stats.submitted += 1

    def _adopt(self, job: Job, slurm_id: str) -> None:
        now = timezone.now()
        with transaction.atomic():
            Job.objects.filter(pk=job.pk).update(
                slurm_job_id=slurm_id,
                state=Job.State.PENDING,
                submitted_at=job.submit_attempted_at or now,
                updated_at=now,
                claimed_by="",
                claimed_until=None,
            )
            JobEvent.objects.create(
                job=job,
                kind=JobEvent.Kind.ADOPTED,
                from_state=Job.State.SUBMITTING,
                to_state=Job.State.PENDING,
                message=f"Slurm job {slurm_id} found by its UUID; not submitted again",
            )
            hooks.state_changed(job, Job.State.SUBMITTING, Job.State.PENDING)

    def _finish_unsubmitted(self, job: Job, reason: str, state: str = Job.State.CANCELLED) -> None:
        now = timezone.now()
        with transaction.atomic():
            Job.objects.filter(pk=job.pk).update(
                state=state,
                reason=reason,
                ended_at=now,
                updated_at=now,
                claimed_by="",
                claimed_until=None,
                logs_final=True,  # it never ran: there are no logs to wait for
            )
            JobEvent.objects.create(
                job=job,
                kind=JobEvent.Kind.ERROR if state == Job.State.FAILED else JobEvent.Kind.STATE,
                from_state=Job.State.SUBMITTING,
                to_state=state,
                message=reason,
            )
            job.state, job.reason = state, reason
            hooks.state_changed(job, Job.State.SUBMITTING, state)

    # --- tracking -----------------------------------------------------------------------------------

    def track(
        self, cluster: Cluster, conn: ssh.Connection, queue: list[slurm.QueueEntry], stats: CycleStats
    ) -> None:
        live = list(
            Job.objects.filter(cluster=cluster, state__in=[Job.State.PENDING, Job.State.RUNNING]).exclude(
                slurm_job_id=""
            )
        )
        stats.tracked = len(live)
        if not live:
            return
        by_id = {e.job_id: e for e in queue}
        leaving = []
        for job in live:
            entry = by_id.get(job.slurm_job_id)
            if entry is not None and entry.state not in slurm.TERMINAL:
                changed = self._apply_queue_entry(job, entry, cluster)
                stats.transitions += int(changed)
            else:
                leaving.append(job)
        if not leaving:
            return
        records = slurm.parse_sacct(
            conn.run(slurm.sacct_command(j.slurm_job_id for j in leaving)).check().stdout
        )
        for job in leaving:
            record = records.get(job.slurm_job_id)
            if record is None or record.state not in slurm.TERMINAL:
                continue  # accounting lags squeue by a second or two: next cycle
            self._finish(job, record, cluster)
            stats.transitions += 1

    def _apply_queue_entry(self, job: Job, entry: slurm.QueueEntry, cluster: Cluster) -> bool:
        new_state = entry.state
        reason = entry.reason if new_state == Job.State.PENDING else ""
        started = _aware(entry.start, cluster) if new_state == Job.State.RUNNING else None
        fields: dict[str, object] = {}
        if job.state != new_state:
            fields["state"] = new_state
        if job.reason != reason:
            fields["reason"] = reason
        if entry.nodes and job.node_list != entry.nodes:
            fields["node_list"] = entry.nodes
        if started and job.started_at is None:
            fields["started_at"] = started
        if not fields:
            return False
        fields["updated_at"] = timezone.now()
        with transaction.atomic():
            updated = Job.objects.filter(pk=job.pk, state=job.state).update(**fields)
            if updated and "state" in fields:
                JobEvent.objects.create(
                    job=job,
                    kind=JobEvent.Kind.STATE,
                    from_state=job.state,
                    to_state=new_state,
                    message=reason,
                )
                old = job.state
                for name, value in fields.items():
                    setattr(job, name, value)
                hooks.state_changed(job, old, new_state)
        return bool(updated and "state" in fields)

    def _finish(self, job: Job, record: slurm.AccountingRecord, cluster: Cluster) -> None:
        reason = ""
        if record.state == Job.State.CANCELLED and record.cancelled_by_uid is not None:
            reason = f"cancelled by uid {record.cancelled_by_uid}"
            if job.cancel_requested_by_id:
                reason = "cancelled from the portal"
        if record.state == Job.State.FAILED and record.signal:
            reason = f"killed by signal {record.signal}"
        elif job.is_training and record.exit_code == EXIT_CONFIG:
            reason = "the run's config was refused (the message is the last line of stderr)"
        elif job.is_training and record.exit_code == EXIT_CHECKPOINTED:
            reason = "stopped before its time limit after saving a checkpoint; resubmit to resume from it"
        now = timezone.now()
        fields = {
            "state": record.state,
            "exit_code": record.exit_code,
            "exit_signal": record.signal,
            "reason": reason,
            "node_list": record.nodes or job.node_list,
            "started_at": _aware(record.start, cluster) or job.started_at,
            "ended_at": _aware(record.end, cluster) or now,
            "gpus": record.gpus or job.gpus,
            "gpu_hours": record.gpu_hours,
            "updated_at": now,
        }
        with transaction.atomic():
            updated = Job.objects.filter(pk=job.pk, state=job.state).update(**fields)
            if updated:
                message = f"exit code {record.exit_code}" if record.exit_code is not None else ""
                if reason:
                    message = f"{message}; {reason}" if message else reason
                JobEvent.objects.create(
                    job=job,
                    kind=JobEvent.Kind.STATE,
                    from_state=job.state,
                    to_state=record.state,
                    message=message,
                )
                old = job.state
                for name, value in fields.items():
                    setattr(job, name, value)
                hooks.state_changed(job, old, record.state)

    # --- cancellation -------------------------------------------------------------------------------

    def send_cancels(self, cluster: Cluster, conn: ssh.Connection, stats: CycleStats) -> None:
        jobs = list(
            Job.objects.filter(
                cluster=cluster,
                cancel_requested_at__isnull=False,
                cancel_sent_at__isnull=True,
                state__in=[Job.State.PENDING, Job.State.RUNNING],
            ).exclude(slurm_job_id="")
        )
        if not jobs:
            return
        conn.run(slurm.scancel_command(j.slurm_job_id for j in jobs)).check()
        now = timezone.now()
        Job.objects.filter(pk__in=[j.pk for j in jobs]).update(cancel_sent_at=now)
        stats.cancelled += len(jobs)

    # --- logs ---------------------------------------------------------------------------------------

    def read_logs(self, cluster: Cluster, conn: ssh.Connection, stats: CycleStats) -> None:
        jobs = list(
            Job.objects.filter(cluster=cluster, logs_final=False)
            .filter(
                Q(state=Job.State.RUNNING)
                | Q(state__in=list(Job.TERMINAL_STATES), submitted_at__isnull=False)
            )
            .select_related("cluster")
            .order_by("-updated_at")[:LOG_JOBS_PER_CYCLE]
        )
        for job in jobs:
            got = 0
            for stream, path, offset_field in (
                (JobLogChunk.Stream.STDOUT, job.stdout_path, "stdout_offset"),
                (JobLogChunk.Stream.STDERR, job.stderr_path, "stderr_offset"),
            ):
                offset = getattr(job, offset_field)
                data = conn.read_from(path, offset, LOG_BYTES_PER_CYCLE)
                if not data:
                    continue
                # Keep whole UTF-8 characters: an incomplete tail waits for the next read.
                text, used = _decode_complete(data)
                if used == 0:
                    continue
                with transaction.atomic():
                    # Advance the offset first: when another worker already stored these bytes the
                    # update matches nothing and no duplicate chunk is written.
                    advanced = Job.objects.filter(pk=job.pk, **{offset_field: offset}).update(
                        **{offset_field: offset + used}
                    )
                    if advanced:
                        JobLogChunk.objects.create(
                            job=job, stream=stream, offset=offset, data=bytes(data[:used]), size=used
                        )
                        hooks.log_appended(job, stream, text)
                if not advanced:
                    continue
                setattr(job, offset_field, offset + used)
                got += used
            stats.log_bytes += got
            if job.is_terminal and got == 0:
                Job.objects.filter(pk=job.pk).update(logs_final=True)


def _decode_complete(data: bytes) -> tuple[str, int]:
    """Decode the longest prefix that ends on a whole UTF-8 character (invalid bytes replaced).
    An incomplete character at the end waits for the next read, even after an invalid byte."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    pending, _ = decoder.getstate()
    return text, len(data) - len(pending)


def log_text(job: Job, stream: str, offset: int = 0, limit: int = 1 << 20) -> tuple[str, int]:
    """A job's stored log from a byte offset: (text, next offset). Reads at most about `limit` bytes;
    an offset inside a multi-byte character starts at the next whole character."""
    raw = bytearray()
    end = offset
    for chunk in JobLogChunk.objects.filter(
        job=job, stream=stream, offset__gte=_chunk_start(job, stream, offset)
    ).order_by("offset"):
        if chunk.offset + chunk.size <= offset:
            continue
        data = bytes(chunk.data)
        raw += data[max(0, offset - chunk.offset) :]
        end = chunk.offset + chunk.size
        if len(raw) >= limit:
            break
    start = 0
    while start < len(raw) and start < 3 and 0x80 <= raw[start] <= 0xBF:
        start += 1  # continuation bytes of a character that began before the offset
    return bytes(raw[start:]).decode("utf-8", errors="replace"), max(end, offset)


def _chunk_start(job: Job, stream: str, offset: int) -> int:
    first = (
        JobLogChunk.objects.filter(job=job, stream=stream, offset__lte=offset)
        .order_by("-offset")
        .values_list("offset", flat=True)
        .first()
    )
    return first if first is not None else 0


def tail(job: Job, stream: str, lines: int = 200) -> str:
    """The last lines of a job's stored log (from its last few chunks)."""
    chunks = list(JobLogChunk.objects.filter(job=job, stream=stream).order_by("-offset")[:20])
    raw = b"".join(bytes(c.data) for c in reversed(chunks))
    return "\n".join(raw.decode("utf-8", errors="replace").splitlines()[-lines:])
