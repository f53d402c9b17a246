"""Forms for the web pages. Validation shared with the API lives on the models (`clean`, `check_dates`)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from portal import access
from portal.models import Goal, Member, Membership, Milestone, Subteam, Task


def model_choice(form: forms.BaseForm, name: str) -> forms.ModelChoiceField[Any]:
    """`form.fields[name]` as the model choice field it is (to mypy a form's fields are plain `Field`s)."""
    field = form.fields[name]
    if not isinstance(field, forms.ModelChoiceField):
        raise TypeError(f"{name} is not a model choice field")
    return field


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
            "assignees": forms.SelectMultiple(attrs={"size": 6}),
        }

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        model_choice(self, "subteam").queryset = access.subteams_for(user)
        model_choice(self, "assignees").queryset = Member.objects.order_by("display_name")
        model_choice(self, "goal").queryset = Goal.objects.filter(
            status__in=[Goal.Status.ON_TRACK, Goal.Status.AT_RISK]
        ).select_related("subteam")


class QuickTaskForm(forms.ModelForm[Task]):
    """The one-line form on the board: title, subteam and column."""

    class Meta:
        model = Task
        fields = ["subteam", "title", "status"]

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        model_choice(self, "subteam").queryset = access.subteams_for(user)
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

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not access.is_admin(user):
            # The management team confirms access; members see their checklist but do not tick it.
            for name in self.ONBOARDING:
                del self.fields[name]


class MembershipForm(forms.Form):
    member = forms.ModelChoiceField(queryset=Member.objects.order_by("display_name"), label=_("Member"))
    role = forms.ChoiceField(choices=Membership.Role.choices, label=_("Role"), initial=Membership.Role.MEMBER)
    started = forms.DateField(label=_("Started"), required=False, widget=DateInput())
