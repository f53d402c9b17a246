"""Clusters reached over SSH, their nodes and partitions, and the jobs the portal submits to them."""

from __future__ import annotations

import os
import re
import uuid
import zoneinfo
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.models import Member, Subteam
from scheduler import slurm

# An absolute path; `{user}` stands for the member's cluster username (a per-user work directory).
WORK_DIR_RE = re.compile(
    r"^/(?:[A-Za-z0-9._/-]|\{user\}){0,400}\Z"
)  # \Z: `$` would accept a trailing newline
WORD_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


class Cluster(models.Model):
    class Status(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        REACHABLE = "reachable", _("Reachable")
        UNREACHABLE = "unreachable", _("Unreachable")
        HOST_KEY_MISMATCH = "host_key_mismatch", _("Host key changed")

    class AuthMode(models.TextChoices):
        CERTIFICATE = "certificate", _("Members' own accounts, by short-lived SSH certificates")
        MEMBER_KEYS = "member_keys", _("Members' own accounts, by their uploaded keys")
        SHARED = "shared", _("One shared account for everyone (unsafe)")

    name = models.CharField(_("name"), max_length=64, unique=True)
    host = models.CharField(_("login host"), max_length=255)
    port = models.PositiveIntegerField(_("SSH port"), default=22)
    username = models.CharField(
        _("service account"),
        max_length=64,
        help_text=_(
            "The portal's own cluster user: tracks every portal job (squeue, sacct), keeps reservations and "
            "Slurm associations. Give it Slurm's Operator level, not Administrator."
        ),
    )
    auth_mode = models.CharField(
        _("how members' jobs reach the cluster"),
        max_length=20,
        choices=AuthMode.choices,
        default=AuthMode.CERTIFICATE,
        help_text=_(
            "Certificates: the portal signs a certificate valid for minutes for the member's cluster "
            "user (the login node trusts the portal's user CA). Uploaded keys: for clusters whose admins "
            "will not add a CA. Shared: every job runs as the service account, so the cluster cannot tell "
            "members apart (unsafe)."
        ),
    )
    key_path = models.CharField(
        _("private key file"),
        max_length=500,
        blank=True,
        help_text=_("Path of the service account's SSH private key on the portal host."),
    )
    key_path_env = models.CharField(
        _("private key file variable"),
        max_length=100,
        blank=True,
        help_text=_("Name of an environment variable holding the key file's path (instead of a path here)."),
    )
    host_key = models.TextField(
        _("pinned host key"),
        blank=True,
        help_text=_("The login node's public host key, trusted once by an admin."),
    )
    default_partition = models.CharField(_("default partition"), max_length=64, default="gpu")
    default_account = models.CharField(_("default account"), max_length=64, blank=True)
    work_dir = models.CharField(
        _("remote work directory"),
        max_length=500,
        help_text=_(
            "Where jobs' run directories go. {user} stands for the member's cluster username, e.g. "
            "/home/{user}/tanuki-runs: each member's runs in a directory of their own."
        ),
    )
    env_preamble = models.TextField(
        _("job environment preamble"),
        blank=True,
        help_text=_("Shell lines run before every job's command, e.g. module load or source …/activate."),
    )
    time_zone = models.CharField(_("cluster time zone"), max_length=64, default="UTC")
    allow_trust_remote_code = models.BooleanField(
        _("allow trust_remote_code"),
        default=False,
        help_text=_(
            "Let members' run.yaml set model.trust_remote_code: true, which runs Python code shipped with "
            "a model on this cluster's nodes. Off: such jobs are refused."
        ),
    )
    is_active = models.BooleanField(_("active"), default=True)
    status = models.CharField(_("status"), max_length=20, choices=Status.choices, default=Status.UNKNOWN)
    last_error = models.TextField(_("last error"), blank=True)
    last_contact_at = models.DateTimeField(_("last contact"), null=True, blank=True)
    inventory_at = models.DateTimeField(_("inventory refreshed"), null=True, blank=True)
    poll_claimed_until = models.DateTimeField(null=True, blank=True)
    poll_claimed_by = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("scheduler:cluster", args=[self.pk])

    def private_key_file(self) -> Path:
        """Where the key lives: the path field, or the file named by an environment variable."""
        if self.key_path:
            return Path(self.key_path)
        if self.key_path_env:
            value = os.environ.get(self.key_path_env, "")
            if value:
                return Path(value)
            raise FileNotFoundError(f"environment variable {self.key_path_env} is not set")
        raise FileNotFoundError("no private key configured")

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        try:
            return zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return zoneinfo.ZoneInfo("UTC")

    def clean(self) -> None:
        if not WORK_DIR_RE.match(self.work_dir or ""):
            raise ValidationError(
                {
                    "work_dir": _(
                        "An absolute path of letters, digits and / . _ - only (it goes into job scripts)."
                    )
                }
            )
        for field in ("default_partition", "default_account", "username"):
            value = getattr(self, field)
            if value and not WORD_RE.match(value):
                raise ValidationError({field: _("Only letters, digits, dots, dashes and underscores.")})

    @property
    def is_shared(self) -> bool:
        """Every job runs as the service account (the unsafe mode)."""
        return self.auth_mode == self.AuthMode.SHARED

    def work_dir_for(self, cluster_user: str) -> str:
        if not WORD_RE.match(cluster_user or ""):
            raise ValueError(f"not a cluster username: {cluster_user!r}")
        return self.work_dir.replace("{user}", cluster_user).rstrip("/")

    def run_dir(self, job_id: uuid.UUID, cluster_user: str) -> str:
        return f"{self.work_dir_for(cluster_user)}/{job_id}"


class ClusterAccount(models.Model):
    """A member's own user on a cluster: their jobs are submitted, cancelled and read as this user.

    Set by an admin (the portal must not let anyone claim another person's account). `verified_at` is
    the last time the portal actually logged in as this user; only then is the member's onboarding step
    "cluster account" done. In the uploaded-keys mode the member's private key is kept here encrypted
    (`scheduler.identity`); it is never shown again."""

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="cluster_accounts", verbose_name=_("member")
    )
    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="accounts", verbose_name=_("cluster")
    )
    username = models.CharField(_("cluster username"), max_length=64)
    verified_at = models.DateTimeField(_("last logged in"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    encrypted_key = models.BinaryField(_("encrypted private key"), blank=True, default=b"", editable=False)
    key_fingerprint = models.CharField(_("key fingerprint"), max_length=100, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["cluster", "username"]
        verbose_name = _("cluster account")
        verbose_name_plural = _("cluster accounts")
        constraints = [
            models.UniqueConstraint(fields=["member", "cluster"], name="one_account_per_cluster"),
            models.UniqueConstraint(fields=["cluster", "username"], name="unique_cluster_username"),
        ]

    def __str__(self) -> str:
        return f"{self.username}@{self.cluster}"

    def clean(self) -> None:
        if not WORD_RE.match(self.username or ""):
            raise ValidationError({"username": _("Only letters, digits, dots, dashes and underscores.")})

    @property
    def has_key(self) -> bool:
        return bool(self.key_fingerprint)


class SubteamAccount(models.Model):
    """The Slurm account of a subteam on a cluster: its jobs run with `--account=<it>`, its bookings
    admit it, and its members' Slurm associations are kept to it (`scheduler.associations`)."""

    subteam = models.ForeignKey(
        Subteam, on_delete=models.CASCADE, related_name="slurm_accounts", verbose_name=_("subteam")
    )
    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="subteam_accounts", verbose_name=_("cluster")
    )
    account = models.CharField(_("Slurm account"), max_length=64)

    class Meta:
        ordering = ["cluster", "subteam"]
        verbose_name = _("Slurm account of a subteam")
        verbose_name_plural = _("Slurm accounts of subteams")
        constraints = [models.UniqueConstraint(fields=["subteam", "cluster"], name="one_slurm_account")]

    def __str__(self) -> str:
        return f"{self.subteam} -> {self.cluster}:{self.account}"

    def clean(self) -> None:
        if not WORD_RE.match(self.account or ""):
            raise ValidationError({"account": _("Only letters, digits, dots, dashes and underscores.")})


class Association(models.Model):
    """A member's Slurm association user → account on a cluster, as the portal wants it and as the
    worker last found it (`scheduler.associations.sync_associations`)."""

    class State(models.TextChoices):
        PENDING = "pending", _("Being added")
        PRESENT = "present", _("In place")
        REMOVING = "removing", _("Being removed")
        REMOVED = "removed", _("Removed")
        FAILED = "failed", _("Failed, retrying")

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="associations")
    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="slurm_associations")
    username = models.CharField(_("cluster username"), max_length=64)
    account = models.CharField(_("Slurm account"), max_length=64)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.PENDING)
    wanted = models.BooleanField(_("wanted"), default=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)
    next_try_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["cluster", "username", "account"]
        verbose_name = _("Slurm association")
        verbose_name_plural = _("Slurm associations")
        constraints = [
            models.UniqueConstraint(fields=["cluster", "username", "account"], name="unique_association")
        ]

    def __str__(self) -> str:
        return f"{self.username}→{self.account}@{self.cluster_id} ({self.state})"


class AccessEvent(models.Model):
    """The audit trail of who may do what on a cluster: accounts set, logins proved or refused, keys
    uploaded, Slurm associations added and removed."""

    class Kind(models.TextChoices):
        ACCOUNT_SET = "account_set", _("Cluster account set")
        ACCOUNT_REMOVED = "account_removed", _("Cluster account removed")
        LOGIN_OK = "login_ok", _("Logged in")
        LOGIN_FAILED = "login_failed", _("Login refused")
        KEY_UPLOADED = "key_uploaded", _("Key uploaded")
        ASSOCIATION_ADDED = "assoc_added", _("Slurm association added")
        ASSOCIATION_REMOVED = "assoc_removed", _("Slurm association removed")
        ASSOCIATION_FAILED = "assoc_failed", _("Slurm association change failed")

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="access_events")
    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, null=True, blank=True, related_name="cluster_access_events"
    )
    actor = models.ForeignKey(Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind} {self.message}"


class JudgeEndpoint(models.Model):
    """An OpenAI-compatible judge an evaluation may use, configured by admins (members pick one; they
    cannot point an evaluation, and its key, at any other URL). The key is never in the database: it is
    read from the portal host's environment variable `key_env` and reaches the job as a file only the
    job's user can read, removed when the job ends."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    base_url = models.URLField(_("base URL"), max_length=300, help_text=_("An OpenAI-compatible /v1 URL."))
    key_env = models.CharField(
        _("key variable"),
        max_length=100,
        blank=True,
        help_text=_("Name of the environment variable on the portal host that holds the API key."),
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("judge endpoint")
        verbose_name_plural = _("judge endpoints")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.key_env and not re.match(r"^[A-Z_][A-Z0-9_]{0,99}\Z", self.key_env):
            raise ValidationError({"key_env": _("An environment variable name (A-Z, 0-9, _).")})

    def api_key(self) -> str:
        """The key from the portal host's environment ("" when unset)."""
        return os.environ.get(self.key_env, "") if self.key_env else ""


class Partition(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="partitions")
    name = models.CharField(_("name"), max_length=64)
    state = models.CharField(_("state"), max_length=32, blank=True)
    is_default = models.BooleanField(_("default"), default=False)
    max_time_minutes = models.PositiveIntegerField(_("time limit (minutes)"), null=True, blank=True)
    default_time_minutes = models.PositiveIntegerField(_("default time (minutes)"), null=True, blank=True)
    nodes = models.CharField(_("nodes"), max_length=500, blank=True)
    total_nodes = models.PositiveIntegerField(_("node count"), default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="unique_partition")]

    def __str__(self) -> str:
        return f"{self.cluster}:{self.name}"


class Node(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(_("name"), max_length=64)
    state = models.CharField(_("state"), max_length=64)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    partitions = models.CharField(_("partitions"), max_length=255, blank=True)
    gpus_total = models.PositiveIntegerField(_("GPUs"), default=0)
    gpus_alloc = models.PositiveIntegerField(_("GPUs in use"), default=0)
    cpus_total = models.PositiveIntegerField(_("CPUs"), default=0)
    cpus_alloc = models.PositiveIntegerField(_("CPUs in use"), default=0)
    memory_mb = models.PositiveIntegerField(_("memory (MB)"), default=0)
    unavailable = models.BooleanField(_("drained or down"), default=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [models.UniqueConstraint(fields=["cluster", "name"], name="unique_node")]

    def __str__(self) -> str:
        return f"{self.cluster}:{self.name}"

    @property
    def gpus_free(self) -> int:
        return 0 if self.unavailable else max(0, self.gpus_total - self.gpus_alloc)

    @property
    def gpu_percent(self) -> int:
        return round(100 * self.gpus_alloc / self.gpus_total) if self.gpus_total else 0


def whole_nodes(gpus: int, gpus_per_node: int) -> int:
    """The nodes that hold `gpus` GPUs, rounded up: Slurm 22.05 reserves whole nodes, not single GPUs."""
    return -(-gpus // max(1, gpus_per_node))


class Job(models.Model):
    class State(models.TextChoices):
        SUBMITTING = "submitting", _("Submitting")
        PENDING = slurm.PENDING, _("Pending")
        RUNNING = slurm.RUNNING, _("Running")
        COMPLETED = slurm.COMPLETED, _("Completed")
        FAILED = slurm.FAILED, _("Failed")
        CANCELLED = slurm.CANCELLED, _("Cancelled")
        TIMEOUT = slurm.TIMEOUT, _("Timed out")
        OUT_OF_MEMORY = slurm.OUT_OF_MEMORY, _("Out of memory")
        NODE_FAIL = slurm.NODE_FAIL, _("Node failure")
        PREEMPTED = slurm.PREEMPTED, _("Preempted")

    class Kind(models.TextChoices):
        CUSTOM = "custom", _("Custom command")
        PRETRAIN = "pretrain", _("Pretraining")
        SFT = "sft", _("SFT")
        DPO = "dpo", _("DPO")
        EVAL = "eval", _("MT-Bench evaluation")

        # Methods, not attributes: an attribute of a TextChoices class would become one more member.
        @classmethod
        def training_kinds(cls) -> tuple[Job.Kind, ...]:
            """Every kind but custom: runs of the `training` package from the run.yaml the portal writes
            out of a `TrainingRequest` (the kind tabs of the training form, the API's `training` object)."""
            return (*cls.kinds_that_train(), cls.EVAL)

        @classmethod
        def kinds_that_train(cls) -> tuple[Job.Kind, ...]:
            """The kinds that train a model: hyperparameters, a loss curve, a model as output (an
            evaluation has scores instead)."""
            return (cls.PRETRAIN, cls.SFT, cls.DPO)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("name"), max_length=100)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices, default=Kind.CUSTOM)
    owner = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="jobs", verbose_name=_("owner"))
    subteam = models.ForeignKey(
        Subteam, on_delete=models.PROTECT, related_name="jobs", verbose_name=_("subteam")
    )
    cluster = models.ForeignKey(
        Cluster, on_delete=models.PROTECT, related_name="jobs", verbose_name=_("cluster")
    )
    cluster_user = models.CharField(
        _("runs as"),
        max_length=64,
        blank=True,
        help_text=_("The cluster user the job was submitted as: its owner's own account."),
    )
    command = models.TextField(_("command"))
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    script = models.TextField(_("sbatch script"))
    partition = models.CharField(_("partition"), max_length=64)
    account = models.CharField(_("account"), max_length=64, blank=True)
    nodes = models.PositiveSmallIntegerField(_("nodes"), default=1)
    gpus_per_node = models.PositiveSmallIntegerField(_("GPUs per node"), default=0)
    time_limit_minutes = models.PositiveIntegerField(_("time limit (minutes)"))
    depends_on = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="dependents",
        verbose_name=_("runs after"),
    )
    resubmitted_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="resubmissions"
    )
    config_yaml = models.TextField(
        _("run config"),
        blank=True,
        help_text=_("The run.yaml staged in the job's directory (training kinds)."),
    )
    pipeline = models.ForeignKey(
        "Pipeline",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
        verbose_name=_("pipeline"),
    )
    pipeline_step = models.PositiveSmallIntegerField(_("pipeline step"), null=True, blank=True)

    state = models.CharField(
        _("state"), max_length=20, choices=State.choices, default=State.SUBMITTING, db_index=True
    )
    slurm_job_id = models.CharField(_("Slurm job ID"), max_length=32, blank=True, db_index=True)
    exit_code = models.IntegerField(_("exit code"), null=True, blank=True)
    exit_signal = models.IntegerField(_("signal"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    node_list = models.CharField(_("nodes used"), max_length=500, blank=True)
    gpus = models.PositiveIntegerField(_("GPUs"), default=0)
    gpu_hours = models.FloatField(_("GPU-hours"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    submitted_at = models.DateTimeField(_("submitted"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    # Worker bookkeeping.
    submit_attempted_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # The fencing token: raised by every claim; a worker records what it did only while it still holds
    # the claim it made (same token), so a worker that froze and woke up cannot overwrite a successor.
    claim_token = models.PositiveBigIntegerField(default=0)
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancel_sent_at = models.DateTimeField(null=True, blank=True)
    stdout_offset = models.BigIntegerField(default=0)
    stderr_offset = models.BigIntegerField(default=0)
    logs_final = models.BooleanField(default=False)
    # Why it ended badly (scheduler.triage): the matched signature's code, the log lines that prove it,
    # the node to blame; set once the logs are read to the end.
    diagnosis = models.JSONField(null=True, blank=True)
    # Nodes the job must not run on (sbatch --exclude), e.g. after one failed under it.
    exclude_nodes = models.CharField(_("excluded nodes"), max_length=500, blank=True)
    # The Slurm reservation (a booking) it was sent into, if any; and, while it waits, when Slurm
    # expects it to start (squeue's start column for pending jobs; scheduler.pending).
    reservation = models.CharField(_("reservation"), max_length=64, blank=True, db_index=True)
    expected_start_at = models.DateTimeField(_("expected start"), null=True, blank=True)
    # Slurm requeued it (a node failure, preemption, a checkpoint's requeue) and it ran again: how many
    # times, and when the current run began (progress and ETA count from there).
    restarts = models.PositiveSmallIntegerField(_("restarts"), default=0)
    running_since = models.DateTimeField(_("running since"), null=True, blank=True)
    # The last checkpoint the run announced in its log (training's "checkpoint saved: step N", or
    # transformers' "Saving model checkpoint to …/checkpoint-N"): how far a resume goes back.
    last_checkpoint_step = models.PositiveBigIntegerField(_("last checkpoint step"), null=True, blank=True)
    last_checkpoint_at = models.DateTimeField(_("last checkpoint"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        indexes = [models.Index(fields=["cluster", "state"], name="job_cluster_state")]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"

    def get_absolute_url(self) -> str:
        return reverse("scheduler:job", args=[self.pk])

    TERMINAL_STATES = frozenset(slurm.TERMINAL)
    LIVE_STATES = frozenset({State.PENDING, State.RUNNING})

    @property
    def is_terminal(self) -> bool:
        return self.state in self.TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state == self.State.COMPLETED

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def slurm_name(self) -> str:
        """The job name on the cluster: carries the UUID so a lost submission can be found again."""
        return f"tanuki-{self.id}"

    @property
    def slurm_comment(self) -> str:
        return f"tanuki:{self.id}"

    @property
    def run_dir(self) -> str:
        return self.cluster.run_dir(self.id, self.cluster_user or self.cluster.username)

    @property
    def secrets_dir(self) -> str:
        """Files only the job's user may read (the judge's key): created 0700, removed when it ends."""
        return f"{self.run_dir}/.secrets"

    @property
    def stdout_path(self) -> str:
        return f"{self.run_dir}/stdout.log"

    @property
    def stderr_path(self) -> str:
        return f"{self.run_dir}/stderr.log"

    @property
    def is_training(self) -> bool:
        """A run of the `training` package, evaluations included (see `Kind.training_kinds`)."""
        return self.kind in self.Kind.training_kinds()

    @property
    def trains(self) -> bool:
        """Trains a model (see `Kind.kinds_that_train`): a loss curve to show, a model to evaluate."""
        return self.kind in self.Kind.kinds_that_train()

    @property
    def config_path(self) -> str:
        return f"{self.run_dir}/run.yaml"

    @property
    def output_dir(self) -> str:
        """Where a training kind writes its model, checkpoints and summaries (`output.dir: out`)."""
        return f"{self.run_dir}/out"

    @property
    def runtime(self) -> float | None:
        """Seconds run so far (or in all, once ended)."""
        if self.started_at is None:
            return None
        end = self.ended_at or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def chain(self) -> list[Job]:
        """The jobs this one waits on, then itself, then those waiting on it (a linear chain)."""
        before: list[Job] = []
        current = self.depends_on
        while current is not None and len(before) < 50:
            before.insert(0, current)
            current = current.depends_on
        after: list[Job] = []
        current_job: Job | None = self
        while current_job is not None and len(after) < 50:
            nxt = current_job.dependents.order_by("created_at").first()
            if nxt is not None:
                after.append(nxt)
            current_job = nxt
        return [*before, self, *after]


class Pipeline(models.Model):
    """Jobs submitted together that run one after another (SFT → DPO → evaluation), each only if the
    previous one succeeded, each reading the previous one's output."""

    name = models.CharField(_("name"), max_length=100)
    owner = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="pipelines", verbose_name=_("owner")
    )
    subteam = models.ForeignKey(
        Subteam, on_delete=models.PROTECT, related_name="pipelines", verbose_name=_("subteam")
    )
    cluster = models.ForeignKey(
        Cluster, on_delete=models.PROTECT, related_name="pipelines", verbose_name=_("cluster")
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("scheduler:pipeline", args=[self.pk])

    def steps(self) -> list[Job]:
        return sorted(self.jobs.all(), key=lambda job: job.pipeline_step or 0)

    @staticmethod
    def progress(steps: list[Job]) -> tuple[str, Job | None]:
        """("completed" | "running" | "stopped" | "waiting", the step it is at or stopped on)."""
        for job in steps:
            if job.state == Job.State.COMPLETED:
                continue
            if job.is_terminal:
                return "stopped", job
            if job.state == Job.State.RUNNING:
                return "running", job
            return "waiting", job
        return "completed", None


class JobTemplate(models.Model):
    """A saved submission (a job's or a pipeline's form fields) that a subteam starts new runs from."""

    name = models.CharField(_("name"), max_length=100)
    subteam = models.ForeignKey(
        Subteam, on_delete=models.CASCADE, related_name="job_templates", verbose_name=_("subteam")
    )
    kind = models.CharField(_("kind"), max_length=20)  # a Job.Kind, or "pipeline"
    description = models.TextField(_("description"), blank=True)
    fields = models.JSONField(_("form fields"), default=dict)
    created_by = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["subteam", "name"]
        verbose_name = _("job template")
        verbose_name_plural = _("job templates")
        constraints = [models.UniqueConstraint(fields=["subteam", "name"], name="unique_template_name")]

    def __str__(self) -> str:
        return f"{self.subteam.slug}/{self.name}"


class JobEvent(models.Model):
    class Kind(models.TextChoices):
        SUBMITTED = "submitted", _("Submitted")
        SENT = "sent", _("Sent to Slurm")
        ADOPTED = "adopted", _("Found on the cluster")
        STATE = "state", _("State changed")
        CANCEL_REQUESTED = "cancel_requested", _("Cancel requested")
        CANCELLED = "cancelled", _("Cancelled")
        RESUBMITTED = "resubmitted", _("Resubmitted")
        RESTARTED = "restarted", _("Restarted after a requeue")
        LOSS_ALERT = "loss_alert", _("Loss spike or NaN")
        ERROR = "error", _("Error")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    from_state = models.CharField(max_length=20, blank=True)
    to_state = models.CharField(max_length=20, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.job_id} {self.kind} {self.from_state}->{self.to_state}"

    @property
    def from_label(self) -> str:
        """The state before, as the pages name it (the raw value for one we do not know)."""
        return _state_label(self.from_state)

    @property
    def to_label(self) -> str:
        return _state_label(self.to_state)


def _state_label(state: str) -> str:
    return str(Job.State(state).label) if state in Job.State.values else state


class JobLogChunk(models.Model):
    """A piece of a job's stdout or stderr, read from the cluster from a saved byte offset."""

    class Stream(models.TextChoices):
        STDOUT = "stdout", "stdout"
        STDERR = "stderr", "stderr"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_chunks")
    stream = models.CharField(max_length=6, choices=Stream.choices)
    offset = models.BigIntegerField()
    data = models.BinaryField()  # the bytes as read: offsets stay exact even around invalid UTF-8
    size = models.PositiveIntegerField()

    class Meta:
        ordering = ["job", "stream", "offset"]
        constraints = [models.UniqueConstraint(fields=["job", "stream", "offset"], name="unique_log_chunk")]

    def __str__(self) -> str:
        return f"{self.job_id} {self.stream} @{self.offset}+{self.size}"


class NodeIncident(models.Model):
    """A node seen drained, down or failing, with Slurm's state and reason as first seen, and the portal's
    jobs that ran there then or had just ended there (`scheduler.drains`, a step of the worker's cycle).
    Open until the node is available again; one open incident per node."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="incidents")
    # A name, not a key: the inventory deletes and recreates Node rows, the incident stays.
    node_name = models.CharField(_("node"), max_length=64)
    state = models.CharField(_("state"), max_length=64)
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    # When Slurm set the reason (its `[user@time]`), else when the portal first saw the node out.
    started_at = models.DateTimeField(_("since"), db_index=True)
    seen_at = models.DateTimeField(_("seen"), default=timezone.now)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)
    jobs = models.ManyToManyField(Job, related_name="node_incidents", blank=True, verbose_name=_("jobs"))
    jobs_left_out = models.PositiveIntegerField(default=0)  # implicated beyond the cap (drains.MAX_JOBS)

    class Meta:
        ordering = ["-started_at", "-pk"]
        verbose_name = _("node incident")
        verbose_name_plural = _("node incidents")
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "node_name"],
                condition=models.Q(resolved_at__isnull=True),
                name="one_open_incident_per_node",
            )
        ]

    def __str__(self) -> str:
        return f"{self.cluster_id}:{self.node_name} {self.state} ({self.reason})"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
