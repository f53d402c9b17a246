"""Faults on the real dev cluster: the login node's sshd goes away, slurmctld restarts, a node crashes,
the host key changes, a worker dies between sbatch and commit, two workers run at once.

Every test that breaks something repairs it in a `finally`, so the next test finds a healthy cluster.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection
from django.utils import timezone

from scheduler import logs, services, slurm, ssh, steps
from scheduler.models import Cluster, Job, JobEvent, Node
from scheduler.worker import Worker
from tests.personas import Team
from tests.scheduler.conftest import Remote, devcluster, fault


def spec(team: Team, cluster: Cluster, name: str, command: str, **kw: Any) -> services.JobSpec:
    return services.JobSpec(subteam=team.sft, cluster=cluster, name=name, command=command, **kw)


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def finished(*jobs: Job) -> Callable[[], bool]:
    return lambda: all((j := fresh(job)).is_terminal and j.logs_final for job in jobs)


def stdout(job: Job) -> str:
    return logs.log_text(job, "stdout")[0]


def one_slurm_job_each(remote: Remote, *jobs: Job) -> None:
    found = remote.slurm_jobs(*[j.slurm_name for j in jobs])
    for job in jobs:
        assert found[job.slurm_name] == {fresh(job).slurm_job_id}, (job.name, found[job.slurm_name])


def test_sshd_outage_marks_the_cluster_unreachable_and_nothing_is_lost(
    team: Team, cluster: Cluster, worker: Worker, run_until: Callable[..., None], remote: Remote
) -> None:
    member = team.member("member")
    running = services.submit_job(member, spec(team, cluster, "through-outage", "sleep 6; echo survived"))
    run_until(lambda: fresh(running).state == Job.State.RUNNING)
    fault("stop-sshd")
    try:
        late = services.submit_job(member, spec(team, cluster, "during-outage", "echo late"))
        outage_cycles = 0
        until = time.monotonic() + 4
        while time.monotonic() < until:
            worker.cycle()  # raises nothing
            stats = worker.last_stats[cluster.pk]
            cluster.refresh_from_db()
            assert cluster.status == Cluster.Status.UNREACHABLE, cluster.last_error
            assert stats.errors
            outage_cycles += 1
            time.sleep(0.3)
        assert outage_cycles >= 5
        assert "cannot connect" in cluster.last_error or "retrying" in cluster.last_error
        assert fresh(late).state == Job.State.SUBMITTING and fresh(late).submit_attempted_at is None
        assert fresh(running).state == Job.State.RUNNING  # no guess while nothing can be known
    finally:
        fault("start-sshd")
    run_until(finished(running, late), timeout=60)
    running.refresh_from_db()
    late.refresh_from_db()
    assert (running.state, running.exit_code, stdout(running)) == (Job.State.COMPLETED, 0, "survived\n")
    assert (late.state, stdout(late)) == (Job.State.COMPLETED, "late\n")
    cluster.refresh_from_db()
    assert (cluster.status, cluster.last_error) == (Cluster.Status.REACHABLE, "")
    one_slurm_job_each(remote, running, late)
    # The sshd started from this process did not inherit Django's $TZ (it would hand it to every
    # session, and Slurm would print times in the portal's zone instead of the cluster's).
    assert remote.run("sh", "-c", 'echo "${TZ-unset}"').check().stdout == "unset\n"


def test_slurmctld_restart_while_a_job_runs(
    team: Team, cluster: Cluster, worker: Worker, run_until: Callable[..., None], remote: Remote
) -> None:
    member = team.member("member")
    job = services.submit_job(member, spec(team, cluster, "through-restart", "sleep 8; echo ok"))
    run_until(lambda: fresh(job).state == Job.State.RUNNING)
    results: list[Any] = []
    restart = threading.Thread(target=lambda: results.append(devcluster("restart-slurmctld", timeout=120)))
    restart.start()
    try:
        time.sleep(0.5)
        during = services.submit_job(member, spec(team, cluster, "during-restart", "echo sent"))
        while restart.is_alive():
            worker.cycle()  # client commands block, retry or fail meanwhile: nothing escapes
            time.sleep(0.3)
    finally:
        restart.join(120)
    assert results and results[0].returncode == 0, results
    run_until(finished(job, during), timeout=60)
    job.refresh_from_db()
    during.refresh_from_db()
    assert (job.state, stdout(job)) == (Job.State.COMPLETED, "ok\n")
    assert (during.state, stdout(during)) == (Job.State.COMPLETED, "sent\n")
    assert fresh(job).started_at is not None
    one_slurm_job_each(remote, job, during)


def test_a_crashed_node_ends_its_job_node_fail_and_shows_down(
    team: Team, cluster: Cluster, worker: Worker, run_until: Callable[..., None], remote: Remote
) -> None:
    job = services.submit_job(team.member("member"), spec(team, cluster, "on-node1", "sleep 300"))
    # The job form has no node list: pin this one to node1 in its script (before the worker sends it).
    job.script = job.script.replace("#SBATCH --partition=", "#SBATCH --nodelist=node1\n#SBATCH --partition=")
    job.save(update_fields=["script"])
    run_until(lambda: fresh(job).state == Job.State.RUNNING)
    assert fresh(job).node_list == "node1"

    def inventory() -> Node:
        Cluster.objects.filter(pk=cluster.pk).update(inventory_at=None)
        worker.cycle()
        return Node.objects.get(cluster=cluster, name="node1")

    assert not inventory().unavailable
    fault("kill-slurmd", "node1")
    try:
        run_until(lambda: fresh(job).is_terminal, timeout=60, interval=1.0)
        job.refresh_from_db()
        assert (job.state, job.node_list) == (Job.State.NODE_FAIL, "node1")
        assert job.exit_code is None  # the script never exited
        assert remote.sacct_state(job.slurm_job_id) == "NODE_FAIL"
        node = inventory()
        assert node.unavailable and "DOWN" in node.state, node.state
        assert node.reason.startswith("Not responding")
        assert node.gpus_free == 0
    finally:
        fault("start-slurmd", "node1")
    node = inventory()
    assert not node.unavailable and "DOWN" not in node.state, node.state


def other_host_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_a_changed_host_key_stops_everything_until_an_admin_trusts_a_key(
    team: Team,
    cluster: Cluster,
    worker: Worker,
    run_until: Callable[..., None],
    remote: Remote,
    devcluster_info: dict[str, Any],
) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(host_key=other_host_key())
    job = services.submit_job(team.member("member"), spec(team, cluster, "behind-key", "echo trusted"))
    for _ in range(4):  # the first try, then cycles while the pool backs off: the same diagnosis
        worker.cycle()
        stats = worker.last_stats[cluster.pk]
        cluster.refresh_from_db()
        assert cluster.status == Cluster.Status.HOST_KEY_MISMATCH, cluster.last_error
        assert "changed" in cluster.last_error and stats.commands == 0
        job.refresh_from_db()
        assert (job.state, job.slurm_job_id, job.submit_attempted_at) == (Job.State.SUBMITTING, "", None)
    assert remote.slurm_jobs(job.slurm_name) == {job.slurm_name: set()}
    assert not remote.for_job(job).exists(job.run_dir)

    services.trust_host_key(team.member("admin"), cluster, devcluster_info["host_key"])
    run_until(finished(job))
    assert (fresh(job).state, stdout(job)) == (Job.State.COMPLETED, "trusted\n")
    cluster.refresh_from_db()
    assert cluster.status == Cluster.Status.REACHABLE
    one_slurm_job_each(remote, job)


class Killed(BaseException):
    """The worker process dying: not an Exception, so nothing on the way out catches it."""


def die_after_sbatch(monkeypatch: pytest.MonkeyPatch, cluster: Cluster, job: Job) -> None:
    """Run a worker that is killed right after sbatch returned, before the Slurm id is committed."""
    doomed = Worker(name="doomed", pool=ssh.Pool())

    def killed(text: str) -> str:
        raise Killed(text)

    with monkeypatch.context() as patch:
        patch.setattr(slurm, "parse_sbatch", killed)
        with pytest.raises(Killed):
            doomed.cycle()
    doomed.pool.close_all()  # its connection dies with it
    job.refresh_from_db()
    assert (job.state, job.slurm_job_id, job.claimed_by) == (Job.State.SUBMITTING, "", "doomed")
    assert job.submit_attempted_at is not None


def leases_expire(cluster: Cluster) -> None:
    """What CLAIM_LEASE does for a dead worker's claims (its heartbeat stopped), without the wait."""
    past = timezone.now() - dt.timedelta(seconds=1)
    Cluster.objects.filter(pk=cluster.pk).update(poll_claimed_until=past)
    Job.objects.filter(cluster=cluster, claimed_by="doomed").update(claimed_until=past)


@pytest.mark.parametrize("where", ["squeue", "sacct"])
def test_a_job_sent_by_a_worker_that_died_before_commit_is_adopted_not_sent_twice(
    team: Team,
    cluster: Cluster,
    run_until: Callable[..., None],
    remote: Remote,
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    """squeue: still queued when the successor looks. sacct: already finished (squeue no longer lists
    it), found in accounting by its name."""
    command = "sleep 4; echo adopted" if where == "squeue" else "echo adopted"
    job = services.submit_job(team.member("member"), spec(team, cluster, "orphan", command))
    die_after_sbatch(monkeypatch, cluster, job)
    (slurm_id,) = remote.slurm_jobs(job.slurm_name)[job.slurm_name]  # sbatch did run, once

    successor = Worker(name="successor", pool=ssh.Pool(max_backoff=2.0))
    try:
        # While the dead worker's leases last, the successor leaves its cluster and job alone.
        successor.cycle()
        assert cluster.pk not in successor.last_stats
        assert fresh(job).slurm_job_id == ""
        if where == "sacct":
            # Wait on accounting, not on an empty squeue: a squeue that fails under load prints nothing too.
            deadline = time.monotonic() + 30
            while remote.sacct_state(slurm_id) != "COMPLETED":
                assert time.monotonic() < deadline, "the job did not finish"
                time.sleep(0.5)
            # ...and the worker's own squeue (pending and running jobs) no longer lists it.
            while any(
                e.job_id == slurm_id
                for e in slurm.parse_squeue(remote.run(*slurm.squeue_command(cluster.username)).stdout)
            ):
                assert time.monotonic() < deadline, "the finished job is still listed by squeue"
                time.sleep(0.5)
        leases_expire(cluster)
        # sacct answers a query by name a few seconds after one by id: until the job shows up the
        # successor waits (ADOPT_GRACE after the attempt), it never sends the job again.
        deadline = time.monotonic() + 20
        adopted = 0
        while not adopted:
            assert time.monotonic() < deadline, "not adopted within 20 s"
            successor.cycle()
            stats = successor.last_stats[cluster.pk]
            assert stats.submitted == 0 and not stats.errors, stats
            adopted = stats.adopted
            time.sleep(0.5)
        job.refresh_from_db()
        assert job.slurm_job_id == slurm_id
        assert job.submit_attempted_at is not None
        assert timezone.now() - job.submit_attempted_at < steps.ADOPT_GRACE
        assert slurm_id in job.events.get(kind=JobEvent.Kind.ADOPTED).message
        assert not job.events.filter(kind=JobEvent.Kind.SENT).exists()
        deadline = time.monotonic() + 60
        while not (fresh(job).is_terminal and fresh(job).logs_final):
            assert time.monotonic() < deadline, successor.last_stats
            successor.cycle()
            time.sleep(0.5)
    finally:
        successor.pool.close_all()
    job.refresh_from_db()
    assert (job.state, stdout(job)) == (Job.State.COMPLETED, "adopted\n")
    assert remote.slurm_jobs(job.slurm_name)[job.slurm_name] == {slurm_id}


def run_concurrently(workers: list[Worker], step: Callable[[Worker], object], job_ids: list[Any]) -> None:
    """Each worker in its own thread (own DB connection), all starting together, until no job waits."""
    barrier = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def loop(worker: Worker) -> None:
        try:
            barrier.wait()
            deadline = time.monotonic() + 40
            while Job.objects.filter(pk__in=job_ids, state=Job.State.SUBMITTING).exists():
                assert time.monotonic() < deadline, "jobs still waiting after 40 s"
                step(worker)
        except BaseException as error:
            errors.append(error)
        finally:
            worker.release_claims()
            worker.pool.close_all()
            connection.close()

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("how", ["cycle", "poll_cluster"])
def test_two_workers_at_once_never_submit_a_job_twice(
    team: Team, cluster: Cluster, remote: Remote, how: str
) -> None:
    """`cycle`: both loop as deployed (the cluster claim lets one poll at a time). `poll_cluster`: both
    poll the same cluster at the same moment, as when a claim expired mid-cycle; the per-job claims
    alone must keep every job to one sbatch."""
    member = team.member("member")
    jobs = [services.submit_job(member, spec(team, cluster, f"pair-{i}", "sleep 60")) for i in range(10)]
    Cluster.objects.filter(pk=cluster.pk).update(inventory_at=timezone.now())  # no inventory this time
    workers = [Worker(name=f"worker-{i}", pool=ssh.Pool(max_backoff=2.0)) for i in range(2)]
    submitted: list[int] = []

    def step(worker: Worker) -> None:
        if how == "cycle":
            worker.cycle()
            stats = worker.last_stats.get(cluster.pk)
        else:
            stats = worker.poll_cluster(Cluster.objects.get(pk=cluster.pk))
        if stats is not None:
            assert not stats.errors, stats.errors
            submitted.append(stats.submitted)
            worker.last_stats.clear()

    run_concurrently(workers, step, [j.pk for j in jobs])
    assert sum(submitted) == 10  # ten sbatch in all, between the two of them
    slurm_ids = [fresh(j).slurm_job_id for j in jobs]
    assert all(i.isdigit() for i in slurm_ids) and len(set(slurm_ids)) == 10
    one_slurm_job_each(remote, *jobs)
    assert JobEvent.objects.filter(job__in=jobs, kind=JobEvent.Kind.SENT).count() == 10
