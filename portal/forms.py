"""Forms for the web pages. Validation shared with the API lives on the models (`clean`, `check_dates`)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from portal import access
from portal.models import Goal, Member, Membership, Milestone, Subteam, Task


def model_choice(form: forms.BaseForm, name: str) -> forms.ModelChoiceField[Any]:
    """`form.fields[name]` as the model choice field it is (to mypy a form's fields are plain `Field`s)."""
    field = form.fields[name]
    if not isinstance(field, forms.ModelChoiceField):
        raise TypeError(f"{name} is not a model choice field")
    return field


def preselect_only_subteam(form: forms.BaseForm, user: Any, *, leading: bool = False) -> None:
    """A new form starts with the user's subteam chosen when they are in exactly one (tasks, goals, jobs).

    Left alone: a bound form, an edited object, and a subteam the caller already chose (the board's,
    `?subteam=`). `leading`: only a subteam the user leads counts (goals).
    """
    if form.is_bound or form.initial.get("subteam") is not None:
        return
    instance = getattr(form, "instance", None)
    if instance is not None and instance.pk is not None:
        return
    only = access.only_subteam_id(user, leading=leading)
    if only is not None:
        form.initial["subteam"] = only


class GoalChoiceField(forms.ModelChoiceField[Goal]):
    """A goal by its title; one that is no longer pursued says so ("Title (Achieved)")."""

    def label_from_instance(self, obj: Goal) -> str:
        if obj.is_open:
            return obj.title
        return f"{obj.title} ({obj.get_status_display()})"


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class TaskForm(forms.ModelForm[Task]):
    class Meta:
        model = Task
        fields = [
            "subteam",
            "title",
            "status",
            "priority",
            "assignees",
            "start_date",
            "due_date",
            "goal",
            "description",
            "learnings",
        ]
        widgets = {
            "start_date": DateInput(),
            "due_date": DateInput(),
            "description": forms.Textarea(attrs={"rows": 3}),
            "learnings": forms.Textarea(attrs={"rows": 3}),
            # data-picker: portal.js turns it into a searchable picker (Tom Select); without
            # JavaScript it stays a plain multiple select.
            "assignees": forms.SelectMultiple(
                attrs={"size": 6, "data-picker": "", "data-placeholder": _("Type a name…")}
            ),
        }
        field_classes = {"goal": GoalChoiceField}

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        model_choice(self, "subteam").queryset = access.subteams_for(user)
        model_choice(self, "assignees").queryset = Member.objects.order_by("display_name")
        # Open goals, and always the task's own goal even once achieved or dropped: a choice missing
        # from the list would show as empty and saving would unlink it.
        offered = Q(status__in=[Goal.Status.ON_TRACK, Goal.Status.AT_RISK])
        if self.instance.goal_id is not None:
            offered |= Q(pk=self.instance.goal_id)
        model_choice(self, "goal").queryset = Goal.objects.filter(offered).select_related("subteam")
        if self.instance.pk is None:
            preselect_only_subteam(self, user)
            me = access.member_of(user)
            if me is not None and "assignees" not in self.initial:
                self.initial["assignees"] = [me.pk]

    def clean_goal(self) -> Goal | None:
        """A post without the goal field at all (a form that does not show it) keeps the task's goal."""
        if self.instance.pk is not None and self.add_prefix("goal") not in self.data:
            return self.instance.goal
        goal: Goal | None = self.cleaned_data.get("goal")
        return goal


class QuickTaskForm(forms.ModelForm[Task]):
    """The one-line form on the board: title, subteam and column."""

    class Meta:
        model = Task
        fields = ["subteam", "title", "status"]

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_choice(self, "subteam").queryset = access.subteams_for(user)
        preselect_only_subteam(self, user)
        self.fields["title"].widget.attrs.update({"placeholder": _("New task…"), "autocomplete": "off"})


class MoveTaskForm(forms.Form):
    status = forms.ChoiceField(choices=Task.Status.choices)


class GoalForm(forms.ModelForm[Goal]):
    reason = forms.CharField(
        label=_("Why this change?"),
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Kept in the goal's history so the team can see why it changed."),
    )

    class Meta:
        model = Goal
        fields = [
            "subteam",
            "title",
            "target",
            "status",
            "start_date",
            "due_date",
            "metric_name",
            "metric_comparison",
            "metric_target",
            "metric_baseline",
            "metric_current",
        ]
        widgets = {
            "start_date": DateInput(),
            "due_date": DateInput(),
            "target": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, user: Any, creating: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        subteam = model_choice(self, "subteam")
        subteam.queryset = access.subteams_for(user, leading=True)
        subteam.empty_label = _("Whole project")
        if creating:
            self.fields["reason"].required = False
            self.fields["reason"].label = _("Why this goal? (optional)")
            preselect_only_subteam(self, user, leading=True)

    def clean_subteam(self) -> Subteam | None:
        subteam: Subteam | None = self.cleaned_data.get("subteam")
        if not access.can_manage_goal(self.user, subteam.pk if subteam else None):
            raise forms.ValidationError(_("You cannot manage goals there."))
        return subteam


class MilestoneForm(forms.ModelForm[Milestone]):
    class Meta:
        model = Milestone
        fields = ["date", "title", "subteam", "done", "description"]
        widgets = {"date": DateInput(), "description": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        subteam = model_choice(self, "subteam")
        subteam.queryset = access.subteams_for(user, leading=True)
        subteam.empty_label = _("Whole project")

    def clean_subteam(self) -> Subteam | None:
        subteam: Subteam | None = self.cleaned_data.get("subteam")
        if not access.can_manage_milestone(self.user, subteam.pk if subteam else None):
            raise forms.ValidationError(_("You cannot manage milestones there."))
        return subteam


class MemberForm(forms.ModelForm[Member]):
    class Meta:
        model = Member
        fields = [
            "display_name",
            "bio",
            "language",
            "slack_user_id",
            "github",
            "huggingface",
            "wandb",
            "has_github",
            "has_huggingface",
            "has_wandb",
            "has_slack",
        ]

    # The cluster account is not ticked by hand: it is done once the portal has logged in as the member
    # (scheduler.identity), and the username is set by an admin on the member's cluster accounts.
    ONBOARDING = ("has_github", "has_huggingface", "has_wandb", "has_slack")

    # Sign-in identities (portal.signin): a Slack user ID or GitHub login signs in as this member, so
    # only the management team sets them, as it sets cluster accounts.
    IDENTITIES = ("slack_user_id", "github")

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not access.is_admin(user):
            # The management team confirms access; members see their checklist but do not tick it.
            for name in (*self.ONBOARDING, *self.IDENTITIES):
                del self.fields[name]


class MembershipForm(forms.Form):
    member = forms.ModelChoiceField(queryset=Member.objects.order_by("display_name"), label=_("Member"))
    role = forms.ChoiceField(choices=Membership.Role.choices, label=_("Role"), initial=Membership.Role.MEMBER)
    started = forms.DateField(label=pgettext_lazy("date", "Started"), required=False, widget=DateInput())
