"""The worker's cost per cycle and its bookkeeping races, on the real dev cluster."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from scheduler import identity, logs, services, ssh, steps, tracking
from scheduler.identity import service_connection as connection_for
from scheduler.models import Cluster, Job, JobEvent, JobLogChunk
from scheduler.steps import CycleStats, Poll
from scheduler.worker import Worker
from tests.personas import Team
from tests.scheduler.conftest import Remote


def spec(team: Team, cluster: Cluster, name: str, command: str, **kw: Any) -> services.JobSpec:
    return services.JobSpec(subteam=team.sft, cluster=cluster, name=name, command=command, **kw)


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[ssh.Connection, str]]]:
    """Every command line any Connection runs, with the connection that ran it."""
    seen: list[tuple[ssh.Connection, str]] = []
    original = ssh.Connection.run_shell

    def recording(self: ssh.Connection, command: str, *args: Any, **kwargs: Any) -> ssh.CommandResult:
        seen.append((self, command))
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(ssh.Connection, "run_shell", recording)
    yield seen


def _program(command: str) -> str:
    """The program a command line runs, past an `env VAR=value` prefix."""
    words = command.split(" ")
    while words and (words[0] == "env" or "=" in words[0]):
        words = words[1:]
    return words[0] if words else command


def measured_cycle(
    worker: Worker, cluster: Cluster, commands: list[tuple[ssh.Connection, str]]
) -> tuple[CycleStats, list[str]]:
    """One cycle with the inventory fresh (so it is not refreshed): stats and the programs it ran."""
    Cluster.objects.filter(pk=cluster.pk).update(inventory_at=timezone.now())
    before = len(commands)
    worker.cycle()
    stats = worker.last_stats[cluster.pk]
    # Every connection of the worker's: the service account's and the members' own.
    ours = {id(conn) for conn in worker.pool._connections.values()}
    # The program's name: commands may start with `env SLURM_TIME_FORMAT=%s`.
    ran = [_program(command) for conn, command in commands[before:] if id(conn) in ours]
    assert stats.commands == len(ran), (stats, ran)
    assert not stats.errors, stats.errors
    return stats, ran


@pytest.mark.parametrize("count", [1, 30])
def test_a_tracking_cycle_costs_squeue_and_at_most_one_sacct_whatever_the_number_of_jobs(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    remote: Remote,
    commands: list[tuple[ssh.Connection, str]],
    count: int,
) -> None:
    member = team.member("member")
    jobs = [services.submit_job(member, spec(team, cluster, f"cost-{i}", "sleep 60")) for i in range(count)]
    live = Job.objects.filter(pk__in=[j.pk for j in jobs])
    run_until(lambda: live.filter(state=Job.State.RUNNING).count() == count, timeout=60)
    assert worker.last_stats[cluster.pk].submitted == 0  # the sbatch cycles are over

    # All queued or running: one squeue answers for all of them.
    stats, ran = measured_cycle(worker, cluster, commands)
    assert (stats.tracked, ran) == (count, ["squeue"])
    # Nothing changed since: tracking reads the live jobs' few columns in one query, whatever their
    # number, and reads in full or writes nothing.
    conn = identity.connect_service(cluster, worker.pool)
    poll = Poll(cluster, conn, worker.name, CycleStats(cluster.name), pool=worker.pool)
    with CaptureQueriesContext(connection) as queries:
        tracking.track_jobs(poll)
    assert (poll.stats.tracked, poll.stats.transitions) == (count, 0)
    assert len(queries) == 1, [q["sql"][:120] for q in queries]

    # They end (cancelled behind the portal's back): squeue + one batched sacct per cycle, until
    # accounting has every end state.
    slurm_ids = sorted(live.values_list("slurm_job_id", flat=True))
    remote.run("scancel", *slurm_ids).check()
    sacct_calls = 0
    deadline = timezone.now() + dt.timedelta(seconds=45)
    while live.exclude(state=Job.State.CANCELLED).exists():
        assert timezone.now() < deadline, "the jobs did not end"
        stats, ran = measured_cycle(worker, cluster, commands)
        assert ran in (["squeue"], ["squeue", "sacct"]), ran
        sacct_calls += ran.count("sacct")
        if "sacct" in ran:  # one sacct for every job that left the queue, not one per job
            sacct = next(c for _, c in reversed(commands) if _program(c) == "sacct")
            leaving = sacct.split("--jobs ", 1)[1].split(" ", 1)[0].strip("'").split(",")
            assert set(leaving) <= set(slurm_ids)
        time.sleep(0.5)
    assert 1 <= sacct_calls <= count
    assert set(live.values_list("state", flat=True)) == {Job.State.CANCELLED}

    # Only terminal jobs left: they are never polled again; once their logs are final, no SFTP either.
    run_until(lambda: not live.filter(logs_final=False).exists(), timeout=30)
    stats, ran = measured_cycle(worker, cluster, commands)
    assert (stats.tracked, ran, stats.sftp_ops) == (0, ["squeue"], 0)


# --- races and doubtful submissions ----------------------------------------------------------------------


def test_a_job_cancelled_after_the_worker_claimed_it_is_not_sent(
    team: Team, cluster: Cluster, worker: Worker, remote: Remote
) -> None:
    """cancel_job lands between the worker's claim and its sbatch: the job must not be resurrected."""
    member = team.member("member")
    job = services.submit_job(member, spec(team, cluster, "late-cancel", "touch ran"))
    conn = worker.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    assert steps.claim_job(job, worker.name)
    services.cancel_job(member, fresh(job))
    assert fresh(job).state == Job.State.CANCELLED
    steps._submit(job, Poll(cluster, conn, worker.name, CycleStats(cluster.name)))
    job.refresh_from_db()
    assert (job.state, job.slurm_job_id, job.submit_attempted_at) == (Job.State.CANCELLED, "", None)
    assert remote.slurm_jobs(job.slurm_name) == {job.slurm_name: set()}


def test_a_transient_sbatch_error_leaves_the_job_to_be_adopted_or_sent_again(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """sbatch's 'Unable to contact slurm controller' (the controller restarting or down) says nothing
    about the job: it stays `submitting`, the cluster is still reachable, and a later cycle sends it."""
    job = services.submit_job(team.member("member"), spec(team, cluster, "transient", "echo ok"))
    original = ssh.Connection.run_shell
    failures = [0]

    def flaky(self: ssh.Connection, command: str, *args: Any, **kwargs: Any) -> ssh.CommandResult:
        if " sbatch " in f" {command} " and not failures[0]:
            failures[0] += 1
            message = (
                "sbatch: error: Batch job submission failed: Unable to contact slurm controller "
                "(connect failure)\n"
            )
            return ssh.CommandResult(command, 1, "", message)
        return original(self, command, *args, **kwargs)

    monkeypatch.setattr(ssh.Connection, "run_shell", flaky)
    worker.cycle()
    job.refresh_from_db()
    assert (job.state, job.slurm_job_id) == (Job.State.SUBMITTING, "")
    assert job.submit_attempted_at is not None
    cluster.refresh_from_db()
    assert cluster.status == Cluster.Status.REACHABLE and "Unable to contact" in cluster.last_error
    # Not found in squeue or sacct after the grace period: sent again (the grace is shortened here).
    monkeypatch.setattr(steps, "ADOPT_GRACE", dt.timedelta(seconds=1))
    run_until(lambda: fresh(job).is_terminal and fresh(job).logs_final, timeout=60)
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED
    assert logs.log_text(job, "stdout")[0] == "ok\n"
    kinds = list(job.events.values_list("kind", flat=True))
    assert kinds.count(JobEvent.Kind.SENT) == 1 and JobEvent.Kind.ADOPTED not in kinds


def test_a_cancel_while_the_attempt_was_in_doubt_is_not_sent_later(
    team: Team, cluster: Cluster, worker: Worker, remote: Remote
) -> None:
    """An attempt that never reached Slurm, then a cancel request: after the grace period the job is
    cancelled, not submitted (and scancelled afterwards)."""
    member = team.member("member")
    job = services.submit_job(member, spec(team, cluster, "doubt", "sleep 30"))
    Job.objects.filter(pk=job.pk).update(submit_attempted_at=timezone.now() - dt.timedelta(minutes=5))
    services.cancel_job(member, fresh(job))
    assert fresh(job).cancel_requested_at is not None and fresh(job).state == Job.State.SUBMITTING
    worker.cycle()
    job.refresh_from_db()
    assert (job.state, job.slurm_job_id) == (Job.State.CANCELLED, "")
    assert job.logs_final
    assert remote.slurm_jobs(job.slurm_name) == {job.slurm_name: set()}


def test_two_workers_reading_the_same_log_store_each_byte_once(
    team: Team, cluster: Cluster, run_until: Callable[..., None], worker: Worker, remote: Remote
) -> None:
    """Worker B reads a log from the offset it loaded; worker A stores the same bytes first. B's
    conditional offset update matches nothing: no duplicate chunk, no IntegrityError."""
    job = services.submit_job(
        team.member("member"), spec(team, cluster, "shared-log", "seq 1 500; echo done >&2")
    )
    run_until(lambda: fresh(job).is_terminal and fresh(job).logs_final)
    expected = remote.for_job(job).read(job.stdout_path)
    # Forget what was read, as if no worker had read the logs yet.
    JobLogChunk.objects.filter(job=job).delete()
    Job.objects.filter(pk=job.pk).update(stdout_offset=0, stderr_offset=0, logs_final=False)

    first = Worker(name="worker-a", pool=ssh.Pool())
    second = Worker(name="worker-b", pool=ssh.Pool())
    conn_a = first.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    conn_b = second.pool.connect((cluster.pk, cluster.username), connection_for(cluster))
    real_read = conn_b.read_from
    interleaved: list[bool] = []

    def read_after_the_other_worker(path: str, offset: int, max_bytes: int = 1 << 20) -> bytes:
        if not interleaved:  # B has loaded the job (offsets 0); A now reads and stores everything
            interleaved.append(True)
            steps.read_logs(Poll(cluster, conn_a, first.name, CycleStats(cluster.name)))
        return real_read(path, offset, max_bytes)

    conn_b.read_from = read_after_the_other_worker  # type: ignore[method-assign]
    try:
        steps.read_logs(Poll(cluster, conn_b, second.name, CycleStats(cluster.name)))
    finally:
        first.pool.close_all()
        second.pool.close_all()
    chunks = list(JobLogChunk.objects.filter(job=job, stream="stdout").order_by("offset"))
    assert [c.offset for c in chunks] == [0]
    assert logs.log_text(job, "stdout") == (expected.decode(), len(expected))
    assert logs.log_text(job, "stderr")[0] == "done\n"
    assert fresh(job).stdout_offset == len(expected)


# --- log decoding ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text", "used"),
    [
        (b"abc", "abc", 3),
        ("✓".encode(), "✓", 3),
        (b"ok \xe2\x9c", "ok ", 3),  # the half character waits for the next read
        (b"\xe2\x9c", "", 0),
        (b"ok \xff then \xe2\x9c", "ok \ufffd then ", 10),  # an invalid byte does not eat the tail
        (b"a\xe2\x9cb", "a\ufffdb", 4),  # a broken character in the middle is replaced
        (b"", "", 0),
    ],
)
def test_decode_complete(data: bytes, text: str, used: int) -> None:
    assert logs.decode_complete(data) == (text, used)


def test_logs_read_in_tiny_pieces_keep_every_character(
    team: Team,
    cluster: Cluster,
    run_until: Callable[..., None],
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reads of 4 bytes split multi-byte characters (and meet an invalid byte): every character is
    stored whole, once, in order."""
    monkeypatch.setattr(steps, "LOG_BYTES_PER_CYCLE", 4)
    command = r"printf 'a\377 ✓✓ 日本語 😀 end\n'"
    job = services.submit_job(team.member("member"), spec(team, cluster, "utf8", command))
    run_until(lambda: fresh(job).is_terminal and fresh(job).logs_final, timeout=60, interval=0.2)
    raw = remote.for_job(job).read(job.stdout_path)
    assert raw == "a\udcff ✓✓ 日本語 😀 end\n".encode(errors="surrogateescape")
    chunks = list(JobLogChunk.objects.filter(job=job, stream="stdout").order_by("offset"))
    assert len(chunks) >= 8 and all(c.size <= 4 for c in chunks)
    assert [c.offset for c in chunks] == [sum(c.size for c in chunks[:i]) for i in range(len(chunks))]
    assert b"".join(bytes(c.data) for c in chunks).decode(errors="replace") == "a\ufffd ✓✓ 日本語 😀 end\n"
    assert fresh(job).stdout_offset == len(raw)
