"""People, subteams, tasks, goals and the plan.

Derived state lives here (`Goal.progress`, `Membership.is_active`); anything that writes several rows
goes through `portal.services`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from portal import formatting


class Subteam(models.Model):
    name = models.CharField(_("name"), max_length=80, unique=True)
    name_ja = models.CharField(_("Japanese name"), max_length=80, blank=True)
    slug = models.SlugField(_("slug"), max_length=40, unique=True)
    purpose = models.TextField(_("purpose"), blank=True)
    slack_channel = models.CharField(
        _("Slack channel"), max_length=80, blank=True, help_text=_("e.g. #team-sft")
    )
    is_management = models.BooleanField(
        _("management team"),
        default=False,
        help_text=_("Members of the management team administer the portal."),
    )
    status_note = models.CharField(_("status"), max_length=200, blank=True)

    class Meta:
        ordering = ["-is_management", "name"]
        verbose_name = _("subteam")
        verbose_name_plural = _("subteams")

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("subteam", args=[self.slug])


class Member(models.Model):
    """A person on the team, linked to the account they sign in with."""

    ONBOARDING_FIELDS = (
        ("has_cluster_account", _("Cluster account (the portal has logged in as you)")),
        ("has_github", _("GitHub organisation")),
        ("has_huggingface", _("Hugging Face organisation")),
        ("has_wandb", _("W&B team")),
        ("has_slack", _("Slack workspace")),
    )

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="member", verbose_name=_("account")
    )
    display_name = models.CharField(_("display name"), max_length=80)
    slack_user_id = models.CharField(_("Slack user ID"), max_length=32, blank=True)
    github = models.CharField(_("GitHub user"), max_length=39, blank=True)
    huggingface = models.CharField(_("Hugging Face user"), max_length=96, blank=True)
    wandb = models.CharField(_("W&B user"), max_length=64, blank=True)
    # Mirrors the username an admin set on the member's cluster account (scheduler.ClusterAccount).
    cluster_account = models.CharField(_("cluster account"), max_length=32, blank=True, editable=False)
    bio = models.CharField(_("about"), max_length=200, blank=True)
    language = models.CharField(
        _("language"),
        max_length=8,
        blank=True,
        choices=settings.LANGUAGES,
        help_text=_("For answers and messages outside the web pages (Slack). Empty: Japanese."),
    )
    joined = models.DateField(_("joined"), default=timezone.localdate)

    # Set by the scheduler once it has logged in as the member's cluster user; never ticked by hand.
    has_cluster_account = models.BooleanField(_("cluster account ready"), default=False, editable=False)
    has_github = models.BooleanField(_("GitHub access ready"), default=False)
    has_huggingface = models.BooleanField(_("Hugging Face access ready"), default=False)
    has_wandb = models.BooleanField(_("W&B access ready"), default=False)
    has_slack = models.BooleanField(_("Slack joined"), default=False)

    subteams: models.ManyToManyField[Subteam, Membership] = models.ManyToManyField(
        Subteam, through="Membership", related_name="members"
    )

    class Meta:
        ordering = ["display_name"]
        verbose_name = _("member")
        verbose_name_plural = _("members")
        constraints = [
            models.UniqueConstraint(
                fields=["slack_user_id"], condition=~Q(slack_user_id=""), name="unique_slack_user_id"
            )
        ]

    def __str__(self) -> str:
        return self.display_name

    def get_absolute_url(self) -> str:
        return reverse("member", args=[self.user.get_username()])

    @property
    def username(self) -> str:
        return self.user.get_username()

    @property
    def initials(self) -> str:
        """The avatar's letters ("Shun Maruyama" → "SM"; see `portal.formatting.initials`)."""
        return formatting.initials(self.display_name)

    @property
    def onboarding(self) -> list[tuple[str, Any, bool]]:
        """(field, label, done) for each onboarding step."""
        return [(field, label, bool(getattr(self, field))) for field, label in self.ONBOARDING_FIELDS]

    @property
    def onboarding_done(self) -> int:
        return sum(1 for _f, _l, done in self.onboarding if done)

    @property
    def onboarding_complete(self) -> bool:
        return self.onboarding_done == len(self.ONBOARDING_FIELDS)


class Membership(models.Model):
    """A member's time in a subteam. Ending one keeps the row, so the history of moves stays."""

    class Role(models.TextChoices):
        LEAD = "lead", _("Lead")
        MEMBER = "member", _("Member")

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("member")
    )
    subteam = models.ForeignKey(
        Subteam, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("subteam")
    )
    role = models.CharField(_("role"), max_length=10, choices=Role.choices, default=Role.MEMBER)
    started = models.DateField(pgettext_lazy("date", "started"), default=timezone.localdate)
    ended = models.DateField(pgettext_lazy("date", "ended"), null=True, blank=True)

    class Meta:
        ordering = ["subteam__name", "role", "member__display_name"]  # leads first
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "subteam"], condition=Q(ended__isnull=True), name="one_active_membership"
            ),
            models.CheckConstraint(
                condition=Q(ended__isnull=True) | Q(ended__gte=models.F("started")),
                name="membership_ends_after_start",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.member} @ {self.subteam} ({self.get_role_display()})"

    @property
    def is_active(self) -> bool:
        return self.ended is None


class Goal(models.Model):
    """A goal of the project (no subteam) or of one subteam; every edit leaves a GoalRevision."""

    class Status(models.TextChoices):
        ON_TRACK = "on_track", _("On track")
        AT_RISK = "at_risk", _("At risk")
        ACHIEVED = "achieved", _("Achieved")
        DROPPED = "dropped", _("Dropped")

    class Comparison(models.TextChoices):
        GTE = ">=", "≥"
        LTE = "<=", "≤"
        GT = ">", ">"
        LT = "<", "<"

    subteam = models.ForeignKey(
        Subteam,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="goals",
        verbose_name=_("subteam"),
    )
    title = models.CharField(_("title"), max_length=200)
    target = models.TextField(_("target"), blank=True, help_text=_("What done looks like, in words."))
    metric_name = models.CharField(
        _("metric"),
        max_length=100,
        blank=True,
        help_text=_("e.g. jmt_bench.avg; leave empty for a goal in words"),
    )
    metric_comparison = models.CharField(
        _("comparison"), max_length=2, choices=Comparison.choices, default=Comparison.GTE
    )
    metric_target = models.FloatField(_("target value"), null=True, blank=True)
    metric_baseline = models.FloatField(_("baseline value"), null=True, blank=True)
    metric_current = models.FloatField(_("current value"), null=True, blank=True)
    start_date = models.DateField(pgettext_lazy("date", "start"), null=True, blank=True)
    due_date = models.DateField(_("due"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.ON_TRACK)
    created_by = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    # Fields whose changes are recorded in GoalRevision.changes.
    TRACKED_FIELDS = (
        "title",
        "target",
        "subteam",
        "metric_name",
        "metric_comparison",
        "metric_target",
        "metric_baseline",
        "metric_current",
        "start_date",
        "due_date",
        "status",
    )

    class Meta:
        ordering = ["due_date", "id"]
        verbose_name = _("goal")
        verbose_name_plural = _("goals")
        constraints = [
            models.CheckConstraint(
                condition=Q(start_date__isnull=True)
                | Q(due_date__isnull=True)
                | Q(due_date__gte=models.F("start_date")),
                name="goal_due_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("goal", args=[self.pk])

    def clean(self) -> None:
        errors = check_dates(self.start_date, self.due_date)
        if errors:
            raise ValidationError(errors)

    @property
    def is_project_wide(self) -> bool:
        return self.subteam_id is None

    @property
    def is_measurable(self) -> bool:
        return bool(self.metric_name) and self.metric_target is not None

    @property
    def is_open(self) -> bool:
        return self.status in (self.Status.ON_TRACK, self.Status.AT_RISK)

    def target_met(self, value: float | None = None) -> bool:
        value = self.metric_current if value is None else value
        if not self.is_measurable or value is None:
            return False
        assert self.metric_target is not None
        return {
            ">=": value >= self.metric_target,
            "<=": value <= self.metric_target,
            ">": value > self.metric_target,
            "<": value < self.metric_target,
        }[self.metric_comparison]

    @property
    def progress(self) -> int | None:
        """Percent of the way from baseline (or 0) to the target, 0-100; None when not measurable."""
        if self.status == self.Status.ACHIEVED:
            return 100
        if not self.is_measurable or self.metric_current is None:
            return None
        assert self.metric_target is not None
        if self.target_met():
            return 100
        start = self.metric_baseline if self.metric_baseline is not None else 0.0
        span = self.metric_target - start
        if span == 0:
            return 0
        return max(0, min(100, round(100 * (self.metric_current - start) / span)))

    @property
    def metric_label(self) -> str:
        if not self.is_measurable:
            return ""
        return f"{self.metric_name} {self.get_metric_comparison_display()} {self.metric_target:g}"


class GoalRevision(models.Model):
    """One change to a goal: who, when, what changed (field -> [old, new]) and why."""

    goal = models.ForeignKey(Goal, on_delete=models.CASCADE, related_name="revisions", verbose_name=_("goal"))
    author = models.ForeignKey(
        Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("author")
    )
    created_at = models.DateTimeField(_("when"), default=timezone.now, db_index=True)
    changes = models.JSONField(_("changes"), default=dict)
    reason = models.TextField(_("reason"), blank=True)
    source = models.CharField(
        _("source"),
        max_length=200,
        blank=True,
        help_text=_("Set for automatic changes, e.g. an evaluation result."),
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("goal revision")
        verbose_name_plural = _("goal revisions")

    def __str__(self) -> str:
        return f"{self.goal} @ {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_creation(self) -> bool:
        return "__created__" in self.changes

    @property
    def change_list(self) -> list[tuple[str, Any, Any]]:
        """(field label, old, new) for display, in the goal's field order."""
        rows = []
        for name in Goal.TRACKED_FIELDS:
            if name in self.changes:
                old, new = self.changes[name]
                field = Goal._meta.get_field(name)
                choices = dict(getattr(field, "choices", None) or [])
                label = getattr(field, "verbose_name", name)
                rows.append((str(label), choices.get(old, old), choices.get(new, new)))
        return rows


class Milestone(models.Model):
    subteam = models.ForeignKey(
        Subteam,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="milestones",
        verbose_name=_("subteam"),
    )
    title = models.CharField(_("title"), max_length=200)
    date = models.DateField(_("date"))
    done = models.BooleanField(_("done"), default=False)
    description = models.TextField(_("description"), blank=True)

    class Meta:
        ordering = ["date", "id"]
        verbose_name = _("milestone")
        verbose_name_plural = _("milestones")

    def __str__(self) -> str:
        return f"{self.date:%m-%d} {self.title}"

    @property
    def is_overdue(self) -> bool:
        return not self.done and self.date < timezone.localdate()


class Task(models.Model):
    class Status(models.TextChoices):
        TODO = "todo", _("To do")
        DOING = "doing", _("Doing")
        BLOCKED = "blocked", _("Blocked")
        DONE = "done", _("Done")

    class Priority(models.IntegerChoices):
        LOW = 1, _("Low")
        NORMAL = 2, _("Normal")
        HIGH = 3, _("High")
        URGENT = 4, _("Urgent")

    subteam = models.ForeignKey(
        Subteam, on_delete=models.CASCADE, related_name="tasks", verbose_name=_("subteam")
    )
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.TODO, db_index=True
    )
    priority = models.IntegerField(_("priority"), choices=Priority.choices, default=Priority.NORMAL)
    assignees = models.ManyToManyField(Member, blank=True, related_name="tasks", verbose_name=_("assignees"))
    start_date = models.DateField(pgettext_lazy("date", "start"), null=True, blank=True)
    due_date = models.DateField(_("due"), null=True, blank=True)
    goal = models.ForeignKey(
        Goal, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks", verbose_name=_("goal")
    )
    learnings = models.TextField(
        _("what we learned"),
        blank=True,
        help_text=_("Know-how worth keeping: what worked, what did not, links."),
    )
    created_by = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    updated_at = models.DateTimeField(_("updated"), default=timezone.now)

    class Meta:
        ordering = ["-priority", "due_date", "id"]
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        constraints = [
            models.CheckConstraint(
                condition=Q(start_date__isnull=True)
                | Q(due_date__isnull=True)
                | Q(due_date__gte=models.F("start_date")),
                name="task_due_after_start",
            )
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("task", args=[self.pk])

    def clean(self) -> None:
        errors = check_dates(self.start_date, self.due_date)
        if self.goal is not None and self.goal.subteam_id not in (None, self.subteam_id):
            errors["goal"] = str(_("Link a goal of the same subteam or of the whole project."))
        if errors:
            raise ValidationError(errors)

    @property
    def is_overdue(self) -> bool:
        return (
            self.status != self.Status.DONE
            and self.due_date is not None
            and self.due_date < timezone.localdate()
        )


def check_dates(start: dt.date | None, due: dt.date | None) -> dict[str, str]:
    """Field errors for a start/due pair, shared by forms and API serializers."""
    if start is not None and due is not None and due < start:
        return {"due_date": str(_("The due date cannot be before the start date."))}
    return {}
