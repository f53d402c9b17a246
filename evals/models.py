"""Evaluation results (Japanese MT-Bench and the like) and, optionally, their per-question judgments."""

from __future__ import annotations

from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.models import Member, Subteam

# The 8 MT-Bench categories, in the order FastChat and training/evaluate.py report them.
CATEGORIES: tuple[str, ...] = (
    "coding",
    "extraction",
    "humanities",
    "math",
    "reasoning",
    "roleplay",
    "stem",
    "writing",
)
CATEGORY_LABELS = {
    "coding": _("Coding"),
    "extraction": _("Extraction"),
    "humanities": _("Humanities"),
    "math": _("Math"),
    "reasoning": _("Reasoning"),
    "roleplay": _("Roleplay"),
    "stem": _("STEM"),
    "writing": _("Writing"),
}
BENCHMARK_LABELS = {"jmt_bench": "MT-Bench"}
DEFAULT_BENCHMARK = "jmt_bench"


class EvalResult(models.Model):
    """One model's scores on one benchmark run: from an eval job, an imported judgment file, or by hand."""

    class Source(models.TextChoices):
        JOB = "job", _("Evaluation job")
        IMPORT = "import", _("Imported file")
        MANUAL = "manual", _("Entered by hand")

    model_name = models.CharField(_("model"), max_length=200)
    job = models.OneToOneField(
        "scheduler.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="eval_result",
        verbose_name=_("evaluation job"),
    )
    trained_by_job = models.ForeignKey(
        "scheduler.Job",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("training job"),
    )
    subteam = models.ForeignKey(
        Subteam,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="eval_results",
        verbose_name=_("subteam"),
        help_text=_("Empty: a result of the whole project."),
    )
    benchmark = models.CharField(_("benchmark"), max_length=50, default=DEFAULT_BENCHMARK, db_index=True)
    question_set = models.CharField(_("question set"), max_length=200, blank=True)
    question_set_sha256 = models.CharField(_("question set SHA-256"), max_length=64, blank=True)
    average = models.FloatField(_("average"), null=True, blank=True)
    coding = models.FloatField(_("coding"), null=True, blank=True)
    extraction = models.FloatField(_("extraction"), null=True, blank=True)
    humanities = models.FloatField(_("humanities"), null=True, blank=True)
    math = models.FloatField(_("math"), null=True, blank=True)
    reasoning = models.FloatField(_("reasoning"), null=True, blank=True)
    roleplay = models.FloatField(_("roleplay"), null=True, blank=True)
    stem = models.FloatField(_("STEM"), null=True, blank=True)
    writing = models.FloatField(_("writing"), null=True, blank=True)
    turn1_average = models.FloatField(_("turn 1 average"), null=True, blank=True)
    turn2_average = models.FloatField(_("turn 2 average"), null=True, blank=True)
    judge_model = models.CharField(_("judge"), max_length=100, blank=True)
    generation = models.JSONField(_("generation settings"), default=dict, blank=True)
    judgment_count = models.PositiveIntegerField(_("judgments"), default=0)
    source = models.CharField(_("source"), max_length=10, choices=Source.choices, default=Source.MANUAL)
    is_baseline = models.BooleanField(
        _("baseline"),
        default=False,
        help_text=_("A reference model to compare against, e.g. an external one."),
    )
    notes = models.TextField(_("notes"), blank=True)
    created_by = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("evaluation result")
        verbose_name_plural = _("evaluation results")
        indexes = [models.Index(fields=["benchmark", "subteam"], name="evalresult_bench_subteam")]

    def __str__(self) -> str:
        return f"{self.model_name} ({self.benchmark})"

    def get_absolute_url(self) -> str:
        return reverse("evals:result", args=[self.pk])

    @property
    def benchmark_label(self) -> str:
        return BENCHMARK_LABELS.get(self.benchmark, self.benchmark)

    @property
    def categories(self) -> dict[str, float | None]:
        return {c: getattr(self, c) for c in CATEGORIES}

    def metric(self, name: str) -> float | None:
        """The value a goal's metric name asks for: `<benchmark>.avg` or `<benchmark>.<category>`."""
        benchmark, _sep, part = name.partition(".")
        if benchmark != self.benchmark:
            return None
        if part == "avg":
            return self.average
        if part in CATEGORIES:
            value: float | None = getattr(self, part)
            return value
        return None

    @property
    def metric_names(self) -> list[str]:
        return [f"{self.benchmark}.avg", *(f"{self.benchmark}.{c}" for c in CATEGORIES)]


class EvalJudgment(models.Model):
    """One judged turn of one question, kept so a result can be read question by question."""

    result = models.ForeignKey(EvalResult, on_delete=models.CASCADE, related_name="judgments")
    question_id = models.CharField(_("question"), max_length=64)
    category = models.CharField(_("category"), max_length=50, blank=True)
    turn = models.PositiveSmallIntegerField(_("turn"))
    score = models.FloatField(_("score"))
    question = models.TextField(_("question text"), blank=True)
    judgment = models.TextField(_("judgment"), blank=True)

    class Meta:
        ordering = ["result", "id"]
        verbose_name = _("judgment")
        verbose_name_plural = _("judgments")
        constraints = [
            models.UniqueConstraint(fields=["result", "question_id", "turn"], name="unique_eval_judgment")
        ]

    def __str__(self) -> str:
        return f"{self.result_id} q{self.question_id} t{self.turn}: {self.score:g}"

    @property
    def is_failed(self) -> bool:
        """A judgment without a rating (FastChat's -1): left out of every average."""
        return self.score == -1


class EvalResultEvent(models.Model):
    """A result landed or was re-scored: written in the transaction that stored the scores, read by
    whoever tells people about results (the Slack outbox reads these rows by cursor)."""

    result = models.ForeignKey(EvalResult, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(_("when"), default=timezone.now)
    average = models.FloatField(_("average"), null=True, blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.result_id} {self.average} {self.at:%Y-%m-%d %H:%M}"
