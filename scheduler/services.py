"""Every change to clusters and jobs goes through these functions (web, API, Slack, commands alike).

Submitting records the Job (state `submitting`) and nothing else: the worker stages and submits it
after commit, so a web request never waits on SSH and a crash cannot submit twice (see worker.py).
"""

from __future__ import annotations

import re
import shlex
import threading
from dataclasses import dataclass
from typing import Any

import hostlist
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from portal import hooks
from portal.models import Member, Subteam
from scheduler import identity, ssh, training_jobs, wakeups
from scheduler.models import (
    AccessEvent,
    Cluster,
    ClusterAccount,
    Job,
    JobEvent,
    JobTemplate,
    Partition,
    Pipeline,
    SubteamAccount,
)
from scheduler.transitions import record as _record
from scheduler.transitions import transition

# Wakes the worker loop early (same process: the embedded demo and tests); other workers poll.
wakeup = threading.Event()

# \Z, not $: `$` also matches before a trailing newline, which would let "name\n" through.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
SLURM_WORD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
HOST_LIST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._,\[\]-]*\Z")
MAX_COMMAND_BYTES = 64 * 1024
MAX_NODES = 64
MIN_GPUS_PER_NODE = 1  # the cluster is for GPU work: a job asks for at least one GPU per node
MAX_GPUS_PER_NODE = 8
DEFAULT_MAX_TIME_MINUTES = 7 * 24 * 60


@dataclass
class JobSpec:
    """What a member asks for; validated by `validate_spec` before anything is recorded."""

    subteam: Subteam
    cluster: Cluster
    name: str
    command: str
    nodes: int = 1
    gpus_per_node: int = 1
    time_limit_minutes: int = 60
    partition: str = ""
    account: str = ""
    kind: str = Job.Kind.CUSTOM
    training: training_jobs.TrainingRequest | None = None  # the training kinds' fields (not for custom)
    model_from_previous: bool = False  # a pipeline step whose model is the previous step's output
    exclude_nodes: str = ""  # a Slurm host list the job must not run on (sbatch --exclude)


def _check_text(value: str, field: str, errors: dict[str, list[str]]) -> None:
    if "\x00" in value:
        errors.setdefault(field, []).append(_("NUL bytes are not allowed."))


def validate_spec(spec: JobSpec) -> JobSpec:
    """Field errors for anything Slurm would reject or that could change the script's meaning."""
    errors: dict[str, list[str]] = {}
    spec.partition = spec.partition or spec.cluster.default_partition
    subteam_account = slurm_account_of(spec.subteam, spec.cluster)
    if spec.account and not SLURM_WORD_RE.match(spec.account):
        pass  # said below, with the partition's
    elif spec.account and subteam_account and spec.account != subteam_account:
        errors.setdefault("account", []).append(
            _("%(subteam)s's jobs run under its Slurm account %(account)s.")
            % {"subteam": spec.subteam.name, "account": subteam_account}
        )
    if not spec.account or SLURM_WORD_RE.match(spec.account):
        spec.account = subteam_account or spec.account or spec.cluster.default_account
    if not spec.cluster.is_active:
        errors.setdefault("cluster", []).append(_("This cluster is not active."))
    if not NAME_RE.match(spec.name or ""):
        errors.setdefault("name", []).append(
            _("Use 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit.")
        )
    for field, value in (("partition", spec.partition), ("account", spec.account)):
        if value and not SLURM_WORD_RE.match(value):
            errors.setdefault(field, []).append(_("Only letters, digits, dots, dashes and underscores."))
    if spec.kind != Job.Kind.CUSTOM:
        if spec.training is None or spec.training.kind != spec.kind:
            errors.setdefault("kind", []).append(_("A training job needs its training fields."))
        else:
            for field, messages in training_jobs.check(
                spec.training,
                nodes=spec.nodes,
                gpus_per_node=spec.gpus_per_node,
                model_from_previous=spec.model_from_previous,
                cluster=spec.cluster,
            ).items():
                errors.setdefault(field, []).extend(messages)
        spec.command = "python -m training." + training_jobs.ENTRY_POINTS.get(spec.kind, spec.kind)
    command = spec.command or ""
    _check_text(command, "command", errors)
    if not command.strip():
        errors.setdefault("command", []).append(_("Say what the job runs."))
    if len(command.encode()) > MAX_COMMAND_BYTES:
        errors.setdefault("command", []).append(
            _("The command is longer than 64 KiB; put it in a script file.")
        )
    if any(line.lstrip().startswith("#SBATCH") for line in command.splitlines()):
        errors.setdefault("command", []).append(
            _("#SBATCH lines are not allowed in the command; use the form's fields for resources.")
        )
    if not 1 <= spec.nodes <= MAX_NODES:
        errors.setdefault("nodes", []).append(_("Between 1 and %(n)d nodes.") % {"n": MAX_NODES})
    if not MIN_GPUS_PER_NODE <= spec.gpus_per_node <= MAX_GPUS_PER_NODE:
        errors.setdefault("gpus_per_node", []).append(
            _("Between %(min)d and %(max)d GPUs per node.")
            % {"min": MIN_GPUS_PER_NODE, "max": MAX_GPUS_PER_NODE}
        )
    if spec.time_limit_minutes < 1:
        errors.setdefault("time_limit_minutes", []).append(_("At least one minute."))
    if spec.exclude_nodes and not _valid_host_list(spec.exclude_nodes):
        errors.setdefault("exclude_nodes", []).append(_("A Slurm host list, such as node3 or node[1-2]."))
    partition = Partition.objects.filter(cluster=spec.cluster, name=spec.partition).first()
    if spec.partition and not errors.get("partition"):
        if partition is None and spec.cluster.partitions.exists():
            errors.setdefault("partition", []).append(
                _("The cluster has no partition %(name)s.") % {"name": spec.partition}
            )
        limit = partition.max_time_minutes if partition else DEFAULT_MAX_TIME_MINUTES
        if limit is not None and spec.time_limit_minutes > limit:
            errors.setdefault("time_limit_minutes", []).append(
                _("The partition allows at most %(limit)d minutes.") % {"limit": limit}
            )
        if partition is not None and partition.total_nodes and spec.nodes > partition.total_nodes:
            errors.setdefault("nodes", []).append(
                _("The partition has only %(n)d nodes.") % {"n": partition.total_nodes}
            )
    if errors:
        raise ValidationError(errors)
    return spec


def _valid_host_list(value: str) -> bool:
    if len(value) > 500 or not HOST_LIST_RE.match(value):
        return False
    try:
        return bool(hostlist.expand_hostlist(value))
    except hostlist.BadHostlist:
        return False


def slurm_account_of(subteam: Subteam, cluster: Cluster) -> str:
    """The subteam's Slurm account on the cluster ("" when none is mapped)."""
    return (
        SubteamAccount.objects.filter(subteam=subteam, cluster=cluster)
        .values_list("account", flat=True)
        .first()
        or ""
    )


def _training_request(job: Job) -> training_jobs.TrainingRequest | None:
    data = (job.parameters or {}).get("training")
    return training_jobs.TrainingRequest.from_dict(data) if job.is_training and data else None


def reservation_for(job: Job) -> str:
    """The Slurm reservation the job is to run in, by the `JOB_RESERVATION` setting's function (the
    lending list: a subteam's jobs run inside its booking); "" for none."""
    finder = hooks.setting_function("JOB_RESERVATION")
    name = finder(job) if finder is not None else None
    if name and not SLURM_WORD_RE.match(name):
        raise ValueError(f"refusing an unsafe reservation name: {name!r}")
    return name or ""


def render_script(job: Job, reservation: str = "") -> str:
    """The sbatch script. Values in #SBATCH lines are validated words; the command runs as written.

    Training kinds run `python -m training.<kind> --config run.yaml` (run.yaml is staged next to the
    script by the worker) with W&B's run id set to the job's UUID."""
    request = _training_request(job)
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name={job.slurm_name}",
        f"#SBATCH --comment={job.slurm_comment}",
        f"#SBATCH --partition={job.partition}",
    ]
    if job.account:
        lines.append(f"#SBATCH --account={job.account}")
    lines += [
        f"#SBATCH --nodes={job.nodes}",
        f"#SBATCH --time={job.time_limit_minutes}",
        f"#SBATCH --output={job.stdout_path}",
        f"#SBATCH --error={job.stderr_path}",
        "#SBATCH --open-mode=append",
    ]
    if job.gpus_per_node:
        lines.append(f"#SBATCH --gres=gpu:{job.gpus_per_node}")
    if job.exclude_nodes:
        lines.append(f"#SBATCH --exclude={job.exclude_nodes}")
    if job.depends_on_id:
        lines.append("#SBATCH --kill-on-invalid-dep=yes")
    if request is not None:
        lines += training_jobs.sbatch_options(job, request)
    if reservation:
        lines.append(f"#SBATCH --reservation={reservation}")
    lines.append("")
    lines.append(f"# Tanuki Portal job {job.id} ({job.name}) for {job.subteam.slug}")
    lines.append("umask 077  # the run directory and what the job writes: for its own user only")
    preamble = job.cluster.env_preamble.strip()
    if preamble:
        lines += [preamble, ""]
    lines.append(f"cd {shlex.quote(job.run_dir)}")
    if job.kind == Job.Kind.EVAL:
        # The judge's key was staged for this job only; it goes when the job does, however it ends.
        lines.append(f"trap {shlex.quote('rm -rf -- ' + shlex.quote(job.secrets_dir))} EXIT")
    if request is not None:
        lines += training_jobs.launch_lines(job, request)
    else:
        lines.append(job.command.rstrip())
    return "\n".join(lines) + "\n"


def _wake() -> None:
    """After commit: wake this process's loop (the embedded deployment) and every worker process."""
    transaction.on_commit(wakeup.set)
    transaction.on_commit(wakeups.notify_workers)


def build_job(actor: Member, spec: JobSpec, depends_on: Job | None = None, **extra: Any) -> Job:
    """An unsaved Job for a validated spec, its script rendered (submit_job saves it; previews don't).
    It runs as the actor's own cluster user; ValidationError when they have none there."""
    try:
        cluster_user = identity.cluster_user_for(actor, spec.cluster)
    except identity.AccountError as error:
        raise ValidationError({"cluster": [str(error)]}) from error
    job = Job(
        name=spec.name,
        kind=spec.kind,
        owner=actor,
        subteam=spec.subteam,
        cluster=spec.cluster,
        cluster_user=cluster_user,
        command=spec.command,
        partition=spec.partition,
        account=spec.account,
        nodes=spec.nodes,
        gpus_per_node=spec.gpus_per_node,
        time_limit_minutes=spec.time_limit_minutes,
        exclude_nodes=spec.exclude_nodes,
        depends_on=depends_on,
        gpus=spec.nodes * spec.gpus_per_node,
        parameters={
            "nodes": spec.nodes,
            "gpus_per_node": spec.gpus_per_node,
            "time_limit_minutes": spec.time_limit_minutes,
            "partition": spec.partition,
            "account": spec.account,
        },
        **extra,
    )
    if spec.training is not None and spec.kind != Job.Kind.CUSTOM:
        request = spec.training
        model = f"{depends_on.output_dir}" if (depends_on and not request.model.strip()) else None
        datasets = training_jobs.resolve_datasets(request.datasets, spec.cluster)[0] if request.trains else []
        config = training_jobs.build_config(
            request,
            nodes=spec.nodes,
            gpus_per_node=spec.gpus_per_node,
            model=model,
            tags=[spec.subteam.slug, str(spec.kind)],
            dataset_paths=[d["path"] for d in datasets],
        )
        if datasets:
            job.parameters["datasets"] = datasets  # which versions it read (experiments records them)
        if spec.kind == Job.Kind.EVAL:
            # The name the result is known by on the leaderboard: the job that trained the model (a
            # pipeline's previous step), else the model directory's name; a model_id in the extra YAML wins.
            if depends_on is not None and model:
                named = depends_on.name
            else:
                named = request.model.rstrip("/").rsplit("/", 1)[-1] or spec.name
            config["evaluate"].setdefault("model_id", named)
            endpoint = training_jobs.judge_endpoint(request)
            if endpoint is not None:
                request.judge_endpoint = endpoint.name  # the worker stages this endpoint's key
                training_jobs.pin_judge(config, endpoint, job.secrets_dir)
        job.parameters["training"] = request.as_dict()
        job.parameters["config"] = config
        job.config_yaml = training_jobs.to_yaml(config)
    job.reservation = reservation_for(job)
    job.script = render_script(job, reservation=job.reservation)
    return job


@transaction.atomic
def submit_job(actor: Member, spec: JobSpec, depends_on: Job | None = None, **extra: Any) -> Job:
    validate_spec(spec)
    job = build_job(actor, spec, depends_on, **extra)
    job.save()
    _record(
        job,
        JobEvent.Kind.SUBMITTED,
        actor,
        to_state=job.state,
        message=_("after %(name)s") % {"name": depends_on.name} if depends_on else "",
    )
    _wake()
    return job


@transaction.atomic
def submit_chain(actor: Member, specs: list[JobSpec]) -> list[Job]:
    """Jobs that run one after another, each only if the previous one succeeded (`afterok`)."""
    if not specs:
        raise ValidationError({"jobs": [_("A chain needs at least one job.")]})
    jobs: list[Job] = []
    for spec in specs:
        jobs.append(submit_job(actor, spec, depends_on=jobs[-1] if jobs else None))
    return jobs


@transaction.atomic
def submit_pipeline(actor: Member, name: str, specs: list[JobSpec]) -> Pipeline:
    """SFT → DPO → evaluation (or any training steps) as one pipeline: a chain whose later steps read
    the previous step's output (`<run dir>/out`) when they name no model of their own."""
    if not specs:
        raise ValidationError({"steps": [_("A pipeline needs at least one step.")]})
    if not NAME_RE.match(name or ""):
        raise ValidationError(
            {
                "name": [
                    _(
                        "Use 1-64 letters, digits, dots, dashes or underscores, starting with a letter or digit."
                    )
                ]
            }
        )
    errors: dict[str, list[str]] = {}
    for number, spec in enumerate(specs, start=1):
        spec.model_from_previous = number > 1
        try:
            validate_spec(spec)
        except ValidationError as error:
            for field, messages in error.message_dict.items():
                errors.setdefault(f"steps[{number}].{field}", []).extend(messages)
    if errors:
        raise ValidationError(errors)
    first = specs[0]
    pipeline = Pipeline.objects.create(name=name, owner=actor, subteam=first.subteam, cluster=first.cluster)
    previous: Job | None = None
    for number, spec in enumerate(specs, start=1):
        job = build_job(actor, spec, depends_on=previous, pipeline=pipeline, pipeline_step=number)
        job.save()
        _record(
            job,
            JobEvent.Kind.SUBMITTED,
            actor,
            to_state=job.state,
            message=_("step %(n)d of pipeline %(name)s") % {"n": number, "name": name},
        )
        previous = job
    _wake()
    return pipeline


def save_template(
    actor: Member, *, subteam: Subteam, name: str, kind: str, fields: dict[str, Any], description: str = ""
) -> JobTemplate:
    """Save (or replace) a subteam's template of the same name."""
    errors = training_jobs.template_errors(name, description, fields)  # lengths, control characters
    if errors:
        raise ValidationError(errors)
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationError({"name": [_("Give the template a name (at most 100 characters).")]})
    if kind not in {*Job.Kind.values, "pipeline"}:
        raise ValidationError({"kind": [_("Unknown job kind %(kind)s.") % {"kind": kind}]})
    kept = {key: value for key, value in fields.items() if key not in TEMPLATE_SKIPPED_FIELDS}
    template, _created = JobTemplate.objects.update_or_create(
        subteam=subteam,
        name=name,
        defaults={
            "kind": kind,
            "fields": kept,
            "description": description,
            "created_by": actor,
            "updated_at": timezone.now(),
        },
    )
    return template


# Form fields a template does not keep: the token, and what says where a run goes rather than what it is.
TEMPLATE_SKIPPED_FIELDS = frozenset({"csrfmiddlewaretoken", "name", "template_name", "template_description"})


def cancel_job(actor: Member | None, job: Job) -> Job:
    """Ask the worker to scancel the job; a job not yet on the cluster is cancelled at once."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().get(pk=job.pk)
        if locked.is_terminal:
            return locked
        now = timezone.now()
        if locked.state == Job.State.SUBMITTING and locked.submit_attempted_at is None:
            transition(
                locked,
                Job.State.CANCELLED,
                expect_from=Job.State.SUBMITTING,
                event=JobEvent.Kind.CANCELLED,
                actor=actor,
                where={"submit_attempted_at__isnull": True},
                ended_at=now,
                cancel_requested_at=now,
                cancel_requested_by=actor,
                reason=_("Cancelled before it reached the cluster."),
                logs_final=True,  # it never ran: no logs will come
            )
            _cancel_dependents(locked)
            return locked
        if locked.cancel_requested_at is None:
            locked.cancel_requested_at = now
            locked.cancel_requested_by = actor
            locked.save(update_fields=["cancel_requested_at", "cancel_requested_by"])
            _record(locked, JobEvent.Kind.CANCEL_REQUESTED, actor)
        _wake()
        return locked


def _cancel_dependents(job: Job) -> None:
    """Jobs waiting on a job that will never succeed can never run: cancel them too."""
    for dependent in Job.objects.filter(
        depends_on=job, state=Job.State.SUBMITTING, submit_attempted_at__isnull=True
    ):
        cancel_job(None, dependent)


def resubmit_job(actor: Member, job: Job, changes: dict[str, Any] | None = None) -> Job:
    """A copy of a job (optionally edited), submitted as a new job."""
    changes = changes or {}
    request = changes.get("training") or _training_request(job)
    if request is not None and not request.model.strip():
        # A pipeline step read its model from the step before: the copy names that directory.
        request.model = str(
            ((job.parameters or {}).get("config") or {}).get("model", {}).get("name_or_path", "")
        )
    spec = JobSpec(
        subteam=changes.get("subteam", job.subteam),
        cluster=changes.get("cluster", job.cluster),
        name=changes.get("name", job.name),
        command=changes.get("command", job.command),
        nodes=changes.get("nodes", job.nodes),
        gpus_per_node=changes.get("gpus_per_node", job.gpus_per_node),
        time_limit_minutes=changes.get("time_limit_minutes", job.time_limit_minutes),
        partition=changes.get("partition", job.partition),
        account=changes.get("account", job.account),
        kind=job.kind,
        training=request,
        exclude_nodes=changes.get("exclude_nodes", job.exclude_nodes),
    )
    new = submit_job(actor, spec, resubmitted_from=job)
    _record(job, JobEvent.Kind.RESUBMITTED, actor, message=str(new.id))
    return new


# --- clusters ------------------------------------------------------------------------------------------


def fetch_host_key(cluster: Cluster) -> tuple[str, str]:
    """(key line, SHA256 fingerprint) the cluster's login node presents now, for an admin to check."""
    key = ssh.fetch_host_key(cluster.host, cluster.port)
    return ssh.key_line(key), ssh.fingerprint(key)


def trust_host_key(actor: Member | None, cluster: Cluster, key_line: str) -> Cluster:
    """Pin a host key (after an admin compared its fingerprint). Replaces any earlier pin."""
    ssh.parse_host_key(key_line)  # refuses garbage
    cluster.host_key = key_line.strip()
    cluster.status = Cluster.Status.UNKNOWN
    cluster.last_error = ""
    cluster.save(update_fields=["host_key", "status", "last_error"])
    ssh.pool.reset_backoff_where(lambda key: isinstance(key, tuple) and key[0] == cluster.pk)
    return cluster


def live_jobs(cluster: Cluster) -> Any:
    return Job.objects.filter(cluster=cluster).filter(
        Q(state__in=[Job.State.PENDING, Job.State.RUNNING]) | Q(state=Job.State.SUBMITTING)
    )


def delete_template(actor: Member | None, template: JobTemplate) -> None:
    """Delete a subteam's saved template (the web page's Delete button and the API's DELETE)."""
    template.delete()


# --- who members are on clusters ------------------------------------------------------------------------

MAX_KEY_BYTES = 16 * 1024


@transaction.atomic
def set_cluster_account(
    actor: Member | None, member: Member, cluster: Cluster, username: str
) -> ClusterAccount:
    """Give a member their cluster username (admins only: the caller checks). A changed username
    forgets the old login proof and any uploaded key: they belonged to the other user."""
    account = ClusterAccount.objects.filter(member=member, cluster=cluster).first()
    if account is not None and account.username == username:
        return account
    taken = ClusterAccount.objects.filter(cluster=cluster, username=username).exclude(member=member).first()
    if taken is not None:
        raise ValidationError(
            {
                "username": [
                    _("%(user)s is already %(member)s's.") % {"user": username, "member": taken.member}
                ]
            }
        )
    if account is None:
        account = ClusterAccount(member=member, cluster=cluster)
    account.username = username
    account.verified_at = None
    account.last_error = ""
    account.encrypted_key = b""
    account.key_fingerprint = ""
    account.full_clean(exclude=["member", "cluster"])
    account.save()
    AccessEvent.objects.create(
        cluster=cluster,
        member=member,
        actor=actor,
        kind=AccessEvent.Kind.ACCOUNT_SET,
        message=f"cluster user {username}",
    )
    _forget_login(member)
    Member.objects.filter(pk=member.pk).update(cluster_account=username[:32])
    return account


@transaction.atomic
def remove_cluster_account(actor: Member | None, account: ClusterAccount) -> None:
    AccessEvent.objects.create(
        cluster=account.cluster,
        member=account.member,
        actor=actor,
        kind=AccessEvent.Kind.ACCOUNT_REMOVED,
        message=f"cluster user {account.username}",
    )
    member = account.member
    account.delete()
    _forget_login(member)


def _forget_login(member: Member) -> None:
    """The onboarding step is done only while some cluster account of theirs has been logged in to."""
    proven = ClusterAccount.objects.filter(member=member, verified_at__isnull=False).exists()
    Member.objects.filter(pk=member.pk).update(has_cluster_account=proven)


def upload_member_key(actor: Member | None, account: ClusterAccount, text: str) -> ClusterAccount:
    """Keep a member's private key, encrypted, for a cluster that logs in with members' own keys. It
    is checked (an unencrypted OpenSSH key), never stored or shown in clear, never logged."""
    if len(text.encode()) > MAX_KEY_BYTES:
        raise ValidationError({"private_key": [_("A private key is a few kilobytes at most.")]})
    try:
        key = ssh.parse_private_key(text.strip() + "\n")
    except ssh.CredentialError as error:
        raise ValidationError(
            {"private_key": [_("Not an unencrypted OpenSSH private key (%(why)s).") % {"why": error}]}
        ) from error
    try:
        token = identity.encrypt_key(text.strip() + "\n")
    except identity.AccountError as error:
        raise ValidationError({"private_key": [str(error)]}) from error
    with transaction.atomic():
        account.encrypted_key = token
        account.key_fingerprint = ssh.fingerprint(key)
        account.verified_at = None
        account.last_error = ""
        account.save(update_fields=["encrypted_key", "key_fingerprint", "verified_at", "last_error"])
        AccessEvent.objects.create(
            cluster=account.cluster,
            member=account.member,
            actor=actor,
            kind=AccessEvent.Kind.KEY_UPLOADED,
            message=account.key_fingerprint,
        )
    ssh.pool.reset_backoff(identity.pool_key(account.cluster, account.username))
    return account


def check_login(actor: Member | None, account: ClusterAccount, pool: ssh.Pool | None = None) -> str:
    """Log in as the account now and ask the login node who we are. "" when that worked (the account
    is then proven), else why not."""
    pool = pool or ssh.pool
    pool.reset_backoff(identity.pool_key(account.cluster, account.username))
    try:
        conn = identity.connect_account(account, pool)
        result = conn.run(["id", "-un"]).check()
    except (identity.AccountError, ssh.SlurmError) as error:
        return str(error)
    if result.stdout.strip() != account.username:
        return _("The login node says this is %(who)s.") % {"who": result.stdout.strip()}
    return ""


def set_subteam_account(
    actor: Member | None, subteam: Subteam, cluster: Cluster, account: str
) -> SubteamAccount:
    """Map a subteam to its Slurm account on a cluster ("" removes the mapping)."""
    mapping = SubteamAccount.objects.filter(subteam=subteam, cluster=cluster).first()
    if not account:
        if mapping is not None:
            mapping.delete()
        return SubteamAccount(subteam=subteam, cluster=cluster, account="")
    if mapping is None:
        mapping = SubteamAccount(subteam=subteam, cluster=cluster)
    mapping.account = account
    mapping.full_clean(exclude=["subteam", "cluster"])
    mapping.save()
    return mapping
