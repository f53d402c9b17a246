"""Jobs on the real dev cluster: truthful end states, cancel, chains, GPU accounting, logs, injection."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from scheduler import logs, services
from scheduler.models import Cluster, Job, JobEvent, JobLogChunk, Node
from scheduler.worker import Worker
from tests.personas import Team
from tests.scheduler.conftest import Remote


def spec(team: Team, cluster: Cluster, name: str, command: str, **kw: object) -> services.JobSpec:
    return services.JobSpec(subteam=team.sft, cluster=cluster, name=name, command=command, **kw)  # type: ignore[arg-type]


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def finished(*jobs: Job) -> Callable[[], bool]:
    """Terminal, with the logs read to the end."""

    def check() -> bool:
        return all((j := fresh(job)).is_terminal and j.logs_final for job in jobs)

    return check


def test_a_failing_job_ends_failed_with_its_exit_code(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    job = services.submit_job(team.member("member"), spec(team, cluster, "fails", "echo hi; exit 3"))
    run_until(finished(job))
    job.refresh_from_db()
    assert (job.state, job.exit_code, job.exit_signal) == (Job.State.FAILED, 3, 0)
    assert job.slurm_job_id.isdigit()
    assert [e.to_state for e in job.events.all()][-1] == "failed"
    assert logs.log_text(job, JobLogChunk.Stream.STDOUT) == ("hi\n", 3)
    assert remote.for_job(job).read(job.stdout_path) == b"hi\n"
    assert remote.sacct_state(job.slurm_job_id) == "FAILED"
    assert job.started_at is not None and job.ended_at is not None and job.ended_at >= job.started_at


def test_a_running_job_is_cancelled_through_the_portal(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    member = team.member("member")
    job = services.submit_job(member, spec(team, cluster, "long", "sleep 300"))
    run_until(lambda: fresh(job).state == Job.State.RUNNING)
    requested_at = timezone.now()
    services.cancel_job(member, fresh(job))
    assert fresh(job).state == Job.State.RUNNING  # only asked: the worker sends scancel
    run_until(lambda: fresh(job).is_terminal, timeout=30)
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
    assert job.reason == "cancelled from the portal"
    assert job.cancel_sent_at is not None and job.cancel_requested_by == member
    assert job.ended_at is not None and job.ended_at - requested_at < dt.timedelta(seconds=20)
    assert remote.sacct_state(job.slurm_job_id).startswith("CANCELLED by ")
    kinds = [e.kind for e in job.events.all()]
    assert kinds[-2:] == [JobEvent.Kind.CANCEL_REQUESTED, JobEvent.Kind.STATE]


def test_a_job_cancelled_before_it_was_sent_never_reaches_the_cluster(
    team: Team, cluster: Cluster, worker: Worker, remote: Remote
) -> None:
    job = services.submit_job(team.member("member"), spec(team, cluster, "never", "touch never-ran"))
    services.cancel_job(team.member("member"), job)
    worker.cycle()
    job.refresh_from_db()
    assert (job.state, job.slurm_job_id, job.submit_attempted_at) == (Job.State.CANCELLED, "", None)
    assert job.logs_final  # nothing will ever come: log viewers can stop asking
    assert remote.slurm_jobs(job.slurm_name) == {job.slurm_name: set()}
    assert not remote.for_job(job).exists(job.run_dir)


def test_a_chain_runs_in_order(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    first, second = services.submit_chain(
        team.member("member"),
        [
            spec(team, cluster, "first", "sleep 3; echo first"),
            spec(team, cluster, "second", "echo second"),
        ],
    )
    assert second.depends_on == first
    reasons_seen: set[str] = set()

    def done() -> bool:
        b = fresh(second)
        if b.state == Job.State.PENDING:
            reasons_seen.add(b.reason)
        return finished(first, second)()

    run_until(done, timeout=60, interval=0.3)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, second.state) == (Job.State.COMPLETED, Job.State.COMPLETED)
    assert second.depends_on is not None and second.depends_on.slurm_job_id == first.slurm_job_id
    assert first.slurm_job_id.isdigit()
    assert "--kill-on-invalid-dep=yes" in second.script
    # B was already in Slurm's queue while A ran, held by the dependency; it started only after A ended.
    assert "Dependency" in reasons_seen
    assert second.submitted_at is not None and first.ended_at is not None
    assert second.submitted_at < first.ended_at
    assert first.started_at is not None and second.started_at is not None
    assert first.started_at < second.started_at
    assert second.started_at >= first.ended_at
    assert logs.log_text(second, "stdout")[0] == "second\n"


def test_a_chain_whose_first_job_fails_never_runs_the_second(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    first, second = services.submit_chain(
        team.member("member"),
        [
            spec(team, cluster, "first", "sleep 2; exit 1"),
            spec(team, cluster, "second", "touch second-ran; echo second"),
        ],
    )
    run_until(finished(first, second), timeout=60)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.exit_code) == (Job.State.FAILED, 1)
    assert second.state == Job.State.CANCELLED
    assert second.started_at is None and second.node_list == ""
    assert not remote.for_job(second).exists(f"{second.run_dir}/second-ran")
    assert not remote.for_job(second).exists(second.stdout_path)
    assert logs.log_text(second, "stdout") == ("", 0)
    if second.slurm_job_id:  # sent with afterok: Slurm cancelled it (kill-on-invalid-dep)
        assert remote.sacct_state(second.slurm_job_id) == "CANCELLED"


def test_gpu_accounting(team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote) -> None:
    job = services.submit_job(
        team.member("member"),
        spec(team, cluster, "gpus", 'echo "$CUDA_VISIBLE_DEVICES"; sleep 4', gpus_per_node=2),
    )
    assert job.gpus == 2 and "#SBATCH --gres=gpu:2" in job.script
    run_until(lambda: fresh(job).state == Job.State.RUNNING)
    # The inventory sees the two GPUs in use on the job's node.
    Cluster.objects.filter(pk=cluster.pk).update(inventory_at=None)
    run_until(lambda: fresh(job).node_list != "" and Node.objects.filter(cluster=cluster).exists())
    node = Node.objects.get(cluster=cluster, name=fresh(job).node_list)
    assert node.gpus_alloc >= 2 and node.gpus_total == 8
    run_until(finished(job))
    job.refresh_from_db()
    assert (job.state, job.gpus) == (Job.State.COMPLETED, 2)
    assert job.runtime is not None and job.runtime >= 4
    assert job.gpu_hours > 0
    assert job.gpu_hours == pytest.approx(2 * job.runtime / 3600, abs=2 * 2 / 3600)
    visible = logs.log_text(job, "stdout")[0].strip().split(",")
    assert len(set(visible)) == 2 and all(v.isdigit() for v in visible)  # two GPUs, whichever were free


def test_logs_are_read_incrementally_from_offsets(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    command = 'for i in $(seq 1 12); do echo "line $i ✓"; echo "err $i" >&2; sleep 0.4; done'
    job = services.submit_job(team.member("member"), spec(team, cluster, "logs", command))
    offsets_seen: list[int] = []

    def done() -> bool:
        current = fresh(job)
        if not offsets_seen or offsets_seen[-1] != current.stdout_offset:
            offsets_seen.append(current.stdout_offset)
        return current.is_terminal and current.logs_final

    run_until(done, timeout=60, interval=0.3)
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED
    remote_out = remote.for_job(job).read(job.stdout_path)
    remote_err = remote.for_job(job).read(job.stderr_path)
    assert remote_out.decode().splitlines() == [f"line {i} ✓" for i in range(1, 13)]
    # Read while it ran, piece by piece, the offset only ever growing.
    assert len(offsets_seen) >= 4, offsets_seen
    assert offsets_seen == sorted(offsets_seen)
    for stream, data, offset in (
        ("stdout", remote_out, job.stdout_offset),
        ("stderr", remote_err, job.stderr_offset),
    ):
        chunks = list(JobLogChunk.objects.filter(job=job, stream=stream).order_by("offset"))
        assert len(chunks) >= 3
        position = 0
        for chunk in chunks:  # contiguous: no gap, no overlap, no duplicate
            assert chunk.offset == position
            assert len(bytes(chunk.data)) == chunk.size
            position += chunk.size
        assert position == offset == len(data)
        assert b"".join(bytes(c.data) for c in chunks) == data
        assert logs.log_text(job, stream) == (data.decode(), len(data))
    # From an offset in the middle of a chunk, and in the middle of a multi-byte character.
    middle = remote_out.index("✓".encode()) + 1
    text, end = logs.log_text(job, "stdout", offset=middle)
    assert end == len(remote_out)
    assert text == remote_out[middle:].decode(errors="ignore")
    assert logs.tail(job, "stdout", lines=2) == "line 11 ✓\nline 12 ✓"
    assert JobLogChunk.objects.filter(job=job).aggregate(n=models.Count("pk"))["n"] == len(
        set(JobLogChunk.objects.filter(job=job).values_list("stream", "offset"))
    )


# --- injection -------------------------------------------------------------------------------------------

HOSTILE = [
    "x;touch {m}",
    "$(touch {m})",
    "`touch {m}`",
    "a b",
    "x|touch {m}",
    "x&&touch {m}",
    "x'y",
    'x"y',
    "x\ny",
    "ok\n",  # a trailing newline: `$` in a regex would let this one through
    "-x",
    "",
]


# An empty partition or account means the cluster's default, so "" is hostile only as a name.
CASES = [(field, t) for field in ("name", "partition", "account") for t in HOSTILE if t or field == "name"]


@pytest.mark.parametrize(("field", "template"), CASES)
def test_hostile_names_partitions_and_accounts_are_rejected(
    team: Team, cluster: Cluster, field: str, template: str
) -> None:
    value = template.format(m="/home/tanuki/tanuki-runs/injected")
    fields = {"name": "ok", "partition": "gpu", "account": "sft", field: value}
    with pytest.raises(ValidationError) as raised:
        services.submit_job(
            team.member("member"),
            services.JobSpec(subteam=team.sft, cluster=cluster, command="true", **fields),  # type: ignore[arg-type]
        )
    assert field in raised.value.error_dict
    assert not Job.objects.exists()


@pytest.mark.parametrize("line", ["#SBATCH --nodelist=node1", "   #SBATCH --exclusive", "\t#SBATCH -w node2"])
def test_sbatch_directives_in_the_command_are_rejected(team: Team, cluster: Cluster, line: str) -> None:
    with pytest.raises(ValidationError) as raised:
        services.submit_job(team.member("member"), spec(team, cluster, "directive", f"echo hi\n{line}\n"))
    assert "command" in raised.value.error_dict
    assert not Job.objects.exists()


def test_the_command_is_the_users_own_shell_code_run_as_the_cluster_user(
    team: Team, cluster: Cluster, run_until: Callable[..., None], devcluster_info: dict[str, Any]
) -> None:
    job = services.submit_job(
        team.member("member"), spec(team, cluster, "whoami", 'echo "user=$(id -un) dir=$(basename "$PWD")"')
    )
    run_until(finished(job))
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED
    # The member's own cluster user, not the portal's service account.
    assert job.cluster_user == "tk-member" != devcluster_info["username"]
    assert logs.log_text(job, "stdout")[0] == f"user=tk-member dir={job.id}\n"


def test_name_partition_and_account_never_reach_a_shell(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    """Even rows that bypassed validate_spec (written by hand): these fields only ever reach sbatch's
    own #SBATCH parser and a comment line, never a shell, so the files they try to create never exist."""
    # Short absolute paths: the values must fit Job.name (100) and partition/account (64) on PostgreSQL.
    tag = uuid.uuid4().hex[:8]
    markers = [f"/home/{cluster.username}/inj-{tag}-{what}" for what in ("n1", "n2", "p", "a")]
    hostile = {
        "name": {"name": f"n$(touch {markers[0]})`touch {markers[1]}`"},
        "partition": {"partition": f"gpu$(touch {markers[2]})"},
        "account": {"account": f"sft;touch {markers[3]}"},
    }
    jobs = {}
    for field, values in hostile.items():
        job = Job(
            owner=team.member("member"),
            subteam=team.sft,
            cluster=cluster,
            name="plain",
            command="echo ran",
            partition="gpu",
            account="sft",
            time_limit_minutes=5,
        )
        for key, value in values.items():
            setattr(job, key, value)
        job.script = services.render_script(job)
        job.save()
        jobs[field] = job
    try:
        run_until(finished(*jobs.values()), timeout=60)
        states = {field: fresh(job).state for field, job in jobs.items()}
        # The name is only a comment in the script: that job runs normally. Slurm refuses the others.
        assert states == {"name": "completed", "partition": "failed", "account": "failed"}
        assert fresh(jobs["name"]).slurm_job_id.isdigit()
        for field in ("partition", "account"):
            failed = fresh(jobs[field])
            assert failed.slurm_job_id == "" and "sbatch: error" in failed.reason
            assert failed.logs_final
        for marker in markers:
            assert not remote.exists(marker), marker
    finally:
        remote.run("rm", "-f", *markers)
