"""Data sets, the models training jobs wrote, sweeps and the results that took a board's top."""

from __future__ import annotations

from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from evals.models import EvalResult
from portal.models import Goal, Member, Subteam
from scheduler.models import Cluster, Job, Pipeline


class Dataset(models.Model):
    """One version of a data set on a cluster: a file or a directory, with what it holds (rows, bytes,
    SHA-256 of the file or of the directory's manifest) as computed on the cluster, as its registrant."""

    class State(models.TextChoices):
        CHECKING = "checking", _("Checking on the cluster")
        READY = "ready", _("Ready")
        MISSING = "missing", _("Not found on the cluster")
        CHANGED = "changed", _("Changed on the cluster since it was registered")
        FAILED = "failed", _("Check failed")

    name = models.CharField(_("name"), max_length=100)
    version = models.CharField(_("version"), max_length=40)
    subteam = models.ForeignKey(
        Subteam, on_delete=models.PROTECT, related_name="datasets", verbose_name=_("subteam")
    )
    cluster = models.ForeignKey(
        Cluster, on_delete=models.PROTECT, related_name="datasets", verbose_name=_("cluster")
    )
    path = models.CharField(_("path on the cluster"), max_length=1000)
    is_directory = models.BooleanField(_("directory"), default=False)
    rows = models.PositiveBigIntegerField(_("rows"), null=True, blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)
    files = models.PositiveIntegerField(_("files"), null=True, blank=True)
    sha256 = models.CharField(
        _("SHA-256"),
        max_length=64,
        blank=True,
        help_text=_("Of the file, or of a directory's manifest (each file's SHA-256 and path, sorted)."),
    )
    notes = models.TextField(_("notes"), blank=True)
    derived_from = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="derived",
        verbose_name=_("derived from"),
    )
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.CHECKING)
    # The latest check on the cluster: sent when (the worker starts it detached, as the registrant), what
    # it said when it did not match (a re-registration whose hash differs changes nothing but this).
    check_user = models.CharField(max_length=64, blank=True)
    recheck = models.BooleanField(default=False)  # registered again: the hash is computed again, compared
    check_started_at = models.DateTimeField(null=True, blank=True)
    check_message = models.CharField(_("last check"), max_length=500, blank=True)
    checked_at = models.DateTimeField(_("checked"), null=True, blank=True)
    created_by = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("registered by"),
    )
    created_at = models.DateTimeField(_("registered"), default=timezone.now)

    class Meta:
        ordering = ["name", "-created_at"]
        verbose_name = _("data set")
        verbose_name_plural = _("data sets")
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="unique_dataset_version")]

    def __str__(self) -> str:
        return self.ref

    def get_absolute_url(self) -> str:
        return reverse("experiments:dataset", args=[self.pk])

    @property
    def ref(self) -> str:
        """How forms, the API and run configs name it: `name@version`."""
        return f"{self.name}@{self.version}"


class JobDataset(models.Model):
    """A data set a job read (training or validation data), as it was when the job was submitted."""

    class Role(models.TextChoices):
        TRAIN = "train", _("training")
        EVAL = "eval", _("validation")

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="dataset_uses")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="uses")
    role = models.CharField(max_length=5, choices=Role.choices, default=Role.TRAIN)
    sha256 = models.CharField(max_length=64, blank=True)  # the version's hash when the job was submitted

    class Meta:
        ordering = ["job", "role", "dataset__name"]
        constraints = [models.UniqueConstraint(fields=["job", "dataset", "role"], name="unique_job_dataset")]

    def __str__(self) -> str:
        return f"{self.job_id} {self.role} {self.dataset_id}"


class ModelRecord(models.Model):
    """The model a training job wrote (its output directory), with what it came from: the base model (a
    hub name, a path, or another job's output: `base`), the data sets and the job's config."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="model_record")
    path = models.CharField(_("path on the cluster"), max_length=1000)
    base_model = models.CharField(_("base model"), max_length=1000, blank=True)
    base = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("trained from"),
    )
    datasets = models.ManyToManyField(Dataset, related_name="models", blank=True)
    config = models.JSONField(_("config"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("model")
        verbose_name_plural = _("models")

    def __str__(self) -> str:
        return f"{self.job.name} → {self.path}"

    @property
    def name(self) -> str:
        return self.job.name


class Sweep(models.Model):
    """Runs that differ only in the fields varied (a grid or a list of values), submitted as one unit,
    each optionally followed by an MT-Bench evaluation (then each run is a pipeline: train → eval)."""

    class Mode(models.TextChoices):
        GRID = "grid", _("Every combination (grid)")
        LIST = "list", _("Side by side (the i-th value of each field)")

    name = models.CharField(_("name"), max_length=64)
    owner = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="sweeps", verbose_name=_("owner")
    )
    subteam = models.ForeignKey(
        Subteam, on_delete=models.PROTECT, related_name="sweeps", verbose_name=_("subteam")
    )
    cluster = models.ForeignKey(
        Cluster, on_delete=models.PROTECT, related_name="sweeps", verbose_name=_("cluster")
    )
    kind = models.CharField(_("kind"), max_length=20)
    mode = models.CharField(_("mode"), max_length=4, choices=Mode.choices, default=Mode.GRID)
    axes = models.JSONField(_("varied fields"), default=list)  # [{"field": name, "values": [...]}, …]
    base = models.JSONField(_("shared fields"), default=dict)  # the training request every run starts from
    with_eval = models.BooleanField(_("MT-Bench after each run"), default=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("sweep")
        verbose_name_plural = _("sweeps")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("experiments:sweep", args=[self.pk])

    @property
    def fields(self) -> list[str]:
        return [str(axis["field"]) for axis in self.axes]


class SweepRun(models.Model):
    """One configuration of a sweep: the values it takes, its training job and, if asked, its evaluation."""

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveSmallIntegerField(_("number"))
    values = models.JSONField(_("values"), default=dict)  # field -> value, for the varied fields
    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="sweep_run")
    eval_job = models.OneToOneField(
        Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="sweep_eval_of"
    )
    pipeline = models.OneToOneField(
        Pipeline, on_delete=models.SET_NULL, null=True, blank=True, related_name="sweep_run"
    )

    class Meta:
        ordering = ["sweep", "number"]
        constraints = [models.UniqueConstraint(fields=["sweep", "number"], name="unique_sweep_run")]

    def __str__(self) -> str:
        return f"{self.sweep_id}#{self.number}"


class BoardRecord(models.Model):
    """A result that took the top of a board (the project's or its subteam's, for its benchmark) or met a
    goal's target: its owner and subteam are told once (`scope` + `result` + goal are unique)."""

    class Scope(models.TextChoices):
        PROJECT = "project", _("top of the project's board")
        SUBTEAM = "subteam", _("top of the subteam's board")
        GOAL = "goal", _("met a goal's target")

    result = models.ForeignKey(EvalResult, on_delete=models.CASCADE, related_name="board_records")
    scope = models.CharField(max_length=10, choices=Scope.choices)
    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    previous = models.ForeignKey(
        EvalResult, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # What changed against the previous best: [{"field", "before", "after"}, …] of the training configs.
    diff = models.JSONField(default=list, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["result", "scope"], condition=models.Q(goal__isnull=True), name="one_board_record"
            ),
            models.UniqueConstraint(
                fields=["result", "goal"], condition=models.Q(goal__isnull=False), name="one_goal_record"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.result_id} {self.scope}"


class BoardCursor(models.Model):
    """How far `experiments.records.check_results` has read the results (by EvalResultEvent id)."""

    name = models.CharField(max_length=40, unique=True)
    last_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}@{self.last_id}"
