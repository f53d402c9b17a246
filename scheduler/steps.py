"""The scheduler's own steps of the worker's cycle, each a small function of one `Poll`.

The cycle's order is the `SCHEDULER_STEPS` setting (config/settings.py); `scheduler.worker` runs it.
Following the jobs through Slurm is `scheduler.tracking`'s step. Per cluster and cycle, one `squeue`
answers for everything of ours still queued or running (every portal user's, as the service account;
`Poll.queue`, read by submission and tracking alike). Each submission adds one round trip as the job's
member (`mkdir -p … && sbatch --parsable`, script on stdin), over that member's pooled connection
(`Poll.for_job`); so do reading a job's logs and files and cancelling one's own job.

Crash safety of a submission:
1. The job is claimed with a conditional UPDATE that sets a fresh fencing token (`claim_token`); two
   workers never take the same row, and a claim lasts `CLAIM_LEASE` unless its worker's heartbeat
   renews it (scheduler.worker), so a dead or frozen worker's claims pass on within seconds.
2. `submit_attempted_at` is committed *before* sbatch runs, only while the claim (token) holds.
3. The files are staged; the claim is checked again right before sbatch.
4. sbatch runs; the Slurm id is committed only while the claim (token) still holds. When it no longer
   does (the worker froze and a successor took the job over), the Slurm job just made is cancelled
   and a warning logged, unless the successor adopted that very job.
A worker killed between 2 and 4 leaves a job with `submit_attempted_at` and no Slurm id; the next
cycle looks for its UUID (job name / comment) in squeue and sacct and adopts it instead of
submitting again. Only a job found nowhere after `ADOPT_GRACE` is submitted again.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone, translation

from scheduler import identity, live, preflight, slurm, ssh, triage
from scheduler.logs import decode_complete
from scheduler.models import (
    Cluster,
    ClusterAccount,
    Job,
    JobEvent,
    JobLogChunk,
    JudgeEndpoint,
    Node,
    Partition,
)
from scheduler.transitions import transition

log = logging.getLogger("scheduler.worker")

ADOPT_GRACE = dt.timedelta(seconds=30)
CLAIM_LEASE = dt.timedelta(seconds=6)  # renewed every HEARTBEAT by a living worker (scheduler.worker)
HEARTBEAT = dt.timedelta(seconds=2)
INVENTORY_EVERY = dt.timedelta(seconds=30)
LOG_BYTES_PER_CYCLE = 256 * 1024
LOG_JOBS_PER_CYCLE = 50
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


# What a visit reads of each job not yet ended, with squeue: the cluster user it runs as (whose jobs
# squeue lists), and what tracking compares with squeue (scheduler.tracking): its Slurm id, state,
# pending reason, node list, and whether it has a start time. Plain tuples, in this order.
LIVE_FIELDS = (
    "cluster_user",
    "slurm_job_id",
    "state",
    "reason",
    "node_list",
    "has_started",
    "expected_start_at",
)
LiveRow = tuple[str, str, str, str, str, bool, dt.datetime | None]


def live_rows(cluster: Cluster) -> list[LiveRow]:
    """The `LIVE_FIELDS` of this cluster's jobs not yet ended (submitting, pending, running): one query,
    no model instances, no UUIDs or timestamps to convert."""
    started = ExpressionWrapper(Q(started_at__isnull=False), output_field=BooleanField())
    return list(
        Job.objects.filter(
            cluster=cluster, state__in=[Job.State.SUBMITTING, Job.State.PENDING, Job.State.RUNNING]
        )
        .annotate(has_started=started)
        .values_list(*LIVE_FIELDS)
    )


@dataclass
class Poll:
    """One worker's visit to one reachable cluster: what every step of the cycle is given.

    `conn` is the service account's connection (tracking, reservations, associations); `for_job(job)`
    is the connection as the job's own member (submitting, their cancels, logs and run files)."""

    cluster: Cluster
    conn: ssh.Connection
    worker: str  # the visiting worker's name: the owner of the claims it makes
    stats: CycleStats
    pool: ssh.Pool | None = None  # where members' connections are pooled (default: the process's)
    _queue: list[slurm.QueueEntry] | None = None
    _live: list[LiveRow] | None = None
    _used: dict[int, tuple[ssh.Connection, int, int]] = field(default_factory=dict)
    _members: dict[str, ssh.Connection | identity.AccountError] = field(default_factory=dict)

    @property
    def queue(self) -> list[slurm.QueueEntry]:
        """Every portal user's jobs in squeue, read once per visit as the service account (the first
        step that asks pays the round trip), right after the live jobs (`live`): the two are one
        picture of the same moment."""
        if self._queue is None:
            self._queue = slurm.parse_squeue(self.conn.run(self.squeue_command()).check().stdout)
        return self._queue

    @property
    def live(self) -> list[LiveRow]:
        """This cluster's jobs not yet ended, as read just before squeue (`live_rows`). A job sent to
        Slurm later in the visit is not among them: the squeue read before it could not show it."""
        if self._live is None:
            self._live = live_rows(self.cluster)
        return self._live

    def squeue_command(self) -> list[str]:
        """squeue for the cluster users whose jobs the portal tracks here: the service account and
        every member with a job not yet ended."""
        users = {row[0] for row in self.live if row[0]}
        return slurm.squeue_command(users | {self.cluster.username})

    def as_user(self, username: str) -> ssh.Connection:
        """An open connection as this cluster user (pooled). identity.AccountError when the login node
        refuses them: the caller skips that job and the reason is on their account."""
        if self.cluster.is_shared or not username or username == self.cluster.username:
            return self.conn
        known = self._members.get(username)
        if isinstance(known, identity.AccountError):
            raise known  # refused earlier in this visit: not asked again until the next one
        if known is not None and known.is_open:
            return known
        try:
            conn = identity.connect_user(self.cluster, username, self.pool or ssh.pool)
        except identity.AccountError as error:
            self._members[username] = error
            raise
        self._members[username] = conn
        self._used.setdefault(id(conn), (conn, conn.commands_run, conn.sftp_ops))
        return conn

    def for_job(self, job: Job) -> ssh.Connection:
        return self.as_user(job.cluster_user)

    def remote_work(self) -> tuple[int, int]:
        """(commands, SFTP operations) this visit made over members' connections."""
        commands = sum(conn.commands_run - before for conn, before, _s in self._used.values())
        sftp = sum(conn.sftp_ops - before for conn, _c, before in self._used.values())
        return commands, sftp


def _uuid_from(comment: str, name: str) -> uuid.UUID | None:
    for text, prefix in ((comment, "tanuki:"), (name, "tanuki-")):
        if text.startswith(prefix):
            try:
                return uuid.UUID(text[len(prefix) :].strip())
            except ValueError:
                continue
    return None


# --- inventory -------------------------------------------------------------------------------------------


def refresh_inventory(poll: Poll, *, force: bool = False) -> None:
    """Nodes and partitions (sinfo, scontrol show partition), every `INVENTORY_EVERY`."""
    cluster, conn = poll.cluster, poll.conn
    if (
        not force
        and cluster.inventory_at is not None
        and timezone.now() - cluster.inventory_at <= INVENTORY_EVERY
    ):
        return
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


# --- submission ------------------------------------------------------------------------------------------


def claim_job(job: Job, worker: str) -> bool:
    """Take the job for this worker with a fresh fencing token (kept on `job.claim_token`)."""
    now = timezone.now()
    token = secrets.randbits(62)
    claimed = bool(
        Job.objects.filter(pk=job.pk, state=Job.State.SUBMITTING)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now) | Q(claimed_by=worker))
        .update(claimed_by=worker, claimed_until=now + CLAIM_LEASE, claim_token=token)
    )
    if claimed:
        job.claimed_by, job.claim_token = worker, token
    return claimed


def holds_claim(job: Job, worker: str) -> dict[str, Any]:
    """The conditions under which `worker` still holds the claim it made on `job` (for a conditional
    UPDATE): its name, its token, a lease not yet run out."""
    return {
        "claimed_by": worker,
        "claim_token": job.claim_token,
        "claimed_until__gt": timezone.now(),
    }


def submit_pending(poll: Poll) -> None:
    """Stage and sbatch the jobs waiting to be submitted; adopt those an earlier attempt queued."""
    waiting = list(
        Job.objects.filter(cluster=poll.cluster, state=Job.State.SUBMITTING)
        .select_related("depends_on", "cluster", "subteam")
        .order_by("created_at")
    )
    if not waiting:
        return
    in_queue = {_uuid_from(e.comment, e.name): e.job_id for e in poll.queue}
    # Jobs whose earlier attempt may have reached Slurm: find them before anything is resubmitted.
    attempted = [j for j in waiting if j.submit_attempted_at is not None]
    found: dict[uuid.UUID, str] = {j.id: in_queue[j.id] for j in attempted if j.id in in_queue}
    missing = [j for j in attempted if j.id not in found]
    if missing:
        result = poll.conn.run(slurm.sacct_by_name_command(j.slurm_name for j in missing)).check()
        for record in slurm.parse_sacct(result.stdout).values():
            job_uuid = _uuid_from(record.comment, record.name)
            if job_uuid is not None:
                found[job_uuid] = record.job_id
    for job in waiting:
        if not claim_job(job, poll.worker):
            continue
        if job.id in found:
            if _adopt(job, found[job.id], poll.worker):
                poll.stats.adopted += 1
            continue
        if job.submit_attempted_at is not None and timezone.now() - job.submit_attempted_at < ADOPT_GRACE:
            continue  # accounting may lag a few seconds: look again before submitting twice
        if job.cancel_requested_at is not None:
            # Cancelled while an earlier attempt was in doubt, and that attempt never reached Slurm.
            if _finish_unsubmitted(job, "Cancelled before it reached the cluster.", worker=poll.worker):
                poll.stats.transitions += 1
            continue
        dependency = job.depends_on
        after_ok: str | None = None
        if dependency is not None:
            if dependency.is_terminal and not dependency.succeeded:
                if _finish_unsubmitted(
                    job, f"{dependency.name} ended {dependency.state}; not run.", worker=poll.worker
                ):
                    poll.stats.transitions += 1
                continue
            if not dependency.is_terminal:
                if not dependency.slurm_job_id:
                    continue  # submitted once the job it waits for has a Slurm id
                after_ok = dependency.slurm_job_id
        try:
            conn = poll.for_job(job)
        except identity.AccountError as error:
            _waiting_for_login(job, str(error), poll.worker)
            continue
        _submit(job, poll, after_ok, conn)


def _waiting_for_login(job: Job, message: str, worker: str) -> None:
    """The member's login was refused: nothing is sent, the job waits (and says why) until an admin
    fixes the account or the member cancels it."""
    reason = f"cannot log in as {job.cluster_user}: {message}"[:500]
    Job.objects.filter(pk=job.pk, state=Job.State.SUBMITTING).exclude(reason=reason).update(
        reason=reason, updated_at=timezone.now()
    )
    Job.objects.filter(pk=job.pk, claimed_by=worker, claim_token=job.claim_token).update(
        claimed_by="", claimed_until=None
    )


def _submit(job: Job, poll: Poll, after_ok: str | None = None, conn: ssh.Connection | None = None) -> None:
    conn = conn or poll.for_job(job)
    # Conditional: a job cancelled (cancel_job) since it was claimed, or claimed by another worker
    # since (this one froze past its lease), is not sent.
    fenced = {"pk": job.pk, "state": Job.State.SUBMITTING}
    if not Job.objects.filter(**fenced, **holds_claim(job, poll.worker)).update(
        submit_attempted_at=timezone.now(), reason=""
    ):
        return
    with translation.override("en"):  # stored like Slurm's own words; pages explain it in both languages
        problems = preflight.check(job, conn)
    if problems:
        # What the run would read is missing or unreadable for its member: nothing reaches Slurm.
        with translation.override("en"):
            reason = "preflight: " + "; ".join(str(p) for p in problems)
            diagnosis = triage.preflight_diagnosis(problems)
        if _finish_unsubmitted(job, reason[:500], state=Job.State.FAILED, worker=poll.worker):
            Job.objects.filter(pk=job.pk).update(diagnosis=diagnosis)
            poll.stats.transitions += 1
        return
    if job.config_yaml:
        # The run's config goes next to the script before sbatch (same transport, SFTP), readable by
        # the member only; the run directory is created only for them (0700).
        conn.write_file(job.config_path, job.config_yaml.encode())
    for name, data in _job_secrets(job).items():
        conn.write_file(f"{job.secrets_dir}/{name}", data, mode=0o600, dir_mode=0o700)
    # umask 077 before sbatch: Slurm creates the job's stdout/stderr with the submitter's umask.
    command = ssh.chain_commands(
        ["umask", "077"],
        ["mkdir", "-p", "-m", "700", job.run_dir],
        ["chmod", "700", job.run_dir],
        slurm.sbatch_command(after_ok),
    )
    if not Job.objects.filter(**fenced, **holds_claim(job, poll.worker)).exists():
        log.warning("job %s: the claim passed to another worker while staging; not sent", job.pk)
        return
    # ClusterUnreachable propagates: the attempt stays recorded; the next cycle adopts or retries.
    result = conn.run_shell(command, stdin=job.script.encode())
    if not result.ok:
        message = (result.stderr or result.stdout).strip()[:500] or f"sbatch exited {result.exit_status}"
        if any(text in message for text in TRANSIENT_SBATCH_ERRORS):
            # The controller is down or slow: the job may or may not be queued. It stays
            # `submitting` with its attempt recorded, so the next cycles adopt it or send it again.
            raise ssh.SlurmError(f"sbatch for {job.slurm_name}: {message}")
        if _finish_unsubmitted(job, message, state=Job.State.FAILED, worker=poll.worker):
            poll.stats.transitions += 1
        return
    slurm_id = slurm.parse_sbatch(result.stdout)
    recorded = transition(
        job,
        Job.State.PENDING,
        expect_from=Job.State.SUBMITTING,
        event=JobEvent.Kind.SENT,
        message=f"Slurm job {slurm_id}",
        where={"claimed_by": poll.worker, "claim_token": job.claim_token},
        slurm_job_id=slurm_id,
        submitted_at=timezone.now(),
        claimed_by="",
        claimed_until=None,
    )
    if recorded:
        poll.stats.submitted += 1
        return
    _unrecorded_sbatch(job, slurm_id, conn, poll.worker)


def _unrecorded_sbatch(job: Job, slurm_id: str, conn: ssh.Connection, worker: str) -> None:
    """This worker's sbatch worked but the job is no longer its to record (it froze past its lease and a
    successor took over, or the job was cancelled meanwhile): unless the successor adopted this very
    Slurm job, it is one too many: cancel it, and say so."""
    now_known = Job.objects.filter(pk=job.pk).values_list("slurm_job_id", "state").first()
    if now_known is not None and now_known[0] == slurm_id:
        log.info("job %s: Slurm job %s was adopted by another worker meanwhile", job.pk, slurm_id)
        return
    log.warning(
        "job %s: sbatch gave Slurm job %s after worker %s lost its claim (the job is %s, Slurm job %s); "
        "cancelling %s so that it does not run twice",
        job.pk,
        slurm_id,
        worker,
        now_known[1] if now_known else "gone",
        (now_known[0] if now_known else "") or "none yet",
        slurm_id,
    )
    conn.run(slurm.scancel_command([slurm_id])).check()


def _job_secrets(job: Job) -> dict[str, bytes]:
    """Files only the job's user reads (`Job.secrets_dir`): the judge's API key of an evaluation, from
    the portal host's environment. Never in the script, the run.yaml or the database."""
    if job.kind != Job.Kind.EVAL:
        return {}
    name = ((job.parameters or {}).get("training") or {}).get("judge_endpoint", "")
    if not name:
        return {}
    endpoint = JudgeEndpoint.objects.filter(name=name).first()
    key = endpoint.api_key() if endpoint is not None else ""
    return {"judge_api_key": key.encode()} if key else {}


def _adopt(job: Job, slurm_id: str, worker: str) -> bool:
    return transition(
        job,
        Job.State.PENDING,
        expect_from=Job.State.SUBMITTING,
        event=JobEvent.Kind.ADOPTED,
        message=f"Slurm job {slurm_id} found by its UUID; not submitted again",
        where={"claimed_by": worker, "claim_token": job.claim_token},
        slurm_job_id=slurm_id,
        submitted_at=job.submit_attempted_at or timezone.now(),
        claimed_by="",
        claimed_until=None,
    )


def _finish_unsubmitted(job: Job, reason: str, state: str = Job.State.CANCELLED, *, worker: str) -> bool:
    return transition(
        job,
        state,
        expect_from=Job.State.SUBMITTING,
        event=JobEvent.Kind.ERROR if state == Job.State.FAILED else JobEvent.Kind.STATE,
        message=reason,
        where={"claimed_by": worker, "claim_token": job.claim_token},
        reason=reason,
        ended_at=timezone.now(),
        claimed_by="",
        claimed_until=None,
        logs_final=True,  # it never ran: there are no logs to wait for
    )


# --- cancellation ----------------------------------------------------------------------------------------


def send_cancels(poll: Poll) -> None:
    """scancel every job whose cancel was asked for and not yet sent: as the job's member when they
    asked for it themselves (Slurm sees them cancel their own job), as the service account when
    someone else did (an admin; the portal, for a pipeline step that can no longer run), one command
    per cluster user."""
    jobs = list(
        Job.objects.filter(
            cluster=poll.cluster,
            cancel_requested_at__isnull=False,
            cancel_sent_at__isnull=True,
            state__in=[Job.State.PENDING, Job.State.RUNNING],
        ).exclude(slurm_job_id="")
    )
    if not jobs:
        return
    own = _own_cancels(poll.cluster, jobs)
    by_user: dict[str, list[Job]] = {}
    for job in jobs:
        user = job.cluster_user if job.pk in own else poll.cluster.username
        by_user.setdefault(user, []).append(job)
    for user, group in sorted(by_user.items()):
        try:
            conn = poll.as_user(user)
        except identity.AccountError:
            conn = poll.conn  # the member's login is refused: the service account still carries it out
        conn.run(slurm.scancel_command(j.slurm_job_id for j in group)).check()
        Job.objects.filter(pk__in=[j.pk for j in group]).update(cancel_sent_at=timezone.now())
        poll.stats.cancelled += len(group)


def _own_cancels(cluster: Cluster, jobs: list[Job]) -> set[Any]:
    """The jobs whose cancel was asked for by the member they run as (one query)."""
    asked_by = {j.cancel_requested_by_id for j in jobs if j.cancel_requested_by_id is not None}
    users = dict(
        ClusterAccount.objects.filter(cluster=cluster, member_id__in=asked_by).values_list(
            "member_id", "username"
        )
    )
    return {
        j.pk
        for j in jobs
        if j.cancel_requested_by_id is not None
        and j.cluster_user
        and users.get(j.cancel_requested_by_id) == j.cluster_user
    }


# --- logs ------------------------------------------------------------------------------------------------


def read_logs(poll: Poll) -> None:
    """New stdout/stderr bytes of running and just-ended jobs, from their saved offsets (SFTP)."""
    jobs = list(
        Job.objects.filter(cluster=poll.cluster, logs_final=False)
        .filter(
            Q(state=Job.State.RUNNING) | Q(state__in=list(Job.TERMINAL_STATES), submitted_at__isnull=False)
        )
        .select_related("cluster")
        .order_by("-updated_at")[:LOG_JOBS_PER_CYCLE]
    )
    for job in jobs:
        try:
            conn = poll.for_job(job)
        except identity.AccountError:
            continue  # read once the member's login works again; the account shows why
        got = 0
        for stream, path, offset_field in (
            (JobLogChunk.Stream.STDOUT, job.stdout_path, "stdout_offset"),
            (JobLogChunk.Stream.STDERR, job.stderr_path, "stderr_offset"),
        ):
            got += _read_stream(conn, job, stream, path, offset_field)
        poll.stats.log_bytes += got
        if job.is_terminal and got == 0:
            _remove_secrets(conn, job)
            Job.objects.filter(pk=job.pk).update(logs_final=True)


def _remove_secrets(conn: ssh.Connection, job: Job) -> None:
    """The job's own script removes its secrets when it ends; this catches a job killed before that."""
    if job.kind != Job.Kind.EVAL:
        return
    try:
        conn.remove_tree(job.secrets_dir)
    except ssh.ClusterUnreachable:
        raise
    except ssh.SlurmError:
        log.warning("could not remove the secrets of job %s", job.pk)


CHECKPOINT_RE = re.compile(r"checkpoint saved: step (\d+)|Saving model checkpoint to \S*checkpoint-(\d+)")


def _last_checkpoint(text: str) -> int | None:
    """The step of the last checkpoint a log chunk announces, if any."""
    found = None
    for match in CHECKPOINT_RE.finditer(text):
        found = int(match[1] or match[2])
    return found


def _read_stream(conn: ssh.Connection, job: Job, stream: str, path: str, offset_field: str) -> int:
    offset: int = getattr(job, offset_field)
    data = conn.read_from(path, offset, LOG_BYTES_PER_CYCLE)
    if not data:
        return 0
    # Keep whole UTF-8 characters: an incomplete tail waits for the next read.
    text, used = decode_complete(data)
    if used == 0:
        return 0
    with transaction.atomic():
        # Advance the offset first: when another worker already stored these bytes the update
        # matches nothing and no duplicate chunk is written.
        advanced = Job.objects.filter(pk=job.pk, **{offset_field: offset}).update(
            **{offset_field: offset + used}
        )
        if not advanced:
            return 0
        JobLogChunk.objects.create(job=job, stream=stream, offset=offset, data=bytes(data[:used]), size=used)
        checkpoint = _last_checkpoint(text)
        if checkpoint is not None:
            Job.objects.filter(pk=job.pk).update(
                last_checkpoint_step=checkpoint, last_checkpoint_at=timezone.now()
            )
        live.push(job.pk, job.subteam_id, log_text=text, log_stream=stream)
    setattr(job, offset_field, offset + used)
    return used
