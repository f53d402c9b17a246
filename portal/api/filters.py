"""Query-string filters of the list endpoints (django-filter).

`subteam` takes a slug everywhere; an unknown slug is a 400 on `subteam`, not an empty list. Goals
and milestones also take `subteam=none` (or `project_wide=true`) for the ones with no subteam.
"""

from __future__ import annotations

import django_filters as df
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from portal.models import Goal, Member, Milestone, Subteam, Task

NO_SUBTEAM = "none"


def _subteams() -> QuerySet[Subteam]:
    return Subteam.objects.all()


def subteam_filter(*, project_wide: bool = False, **kwargs: object) -> df.ModelChoiceFilter:
    """A `?subteam=<slug>` filter; with project_wide, `?subteam=none` asks for rows with no subteam."""
    if project_wide:
        kwargs.update(null_label="project-wide", null_value=NO_SUBTEAM)
        help_text = f"Subteam slug, or `{NO_SUBTEAM}` for project-wide ones."
    else:
        help_text = "Subteam slug."
    kwargs.setdefault("field_name", "subteam")
    return df.ModelChoiceFilter(queryset=_subteams(), to_field_name="slug", help_text=help_text, **kwargs)


@extend_schema_field(OpenApiTypes.STR)
class UsernameFilter(df.ModelChoiceFilter):
    """A member by username; an unknown username is a 400, not an empty list."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(queryset=Member.objects.all(), to_field_name="user__username", **kwargs)


class MemberFilter(df.FilterSet):
    subteam = subteam_filter(method="filter_current_subteam")

    class Meta:
        model = Member
        fields = ["subteam"]

    def filter_current_subteam(
        self, queryset: QuerySet[Member], name: str, value: Subteam
    ) -> QuerySet[Member]:
        """Current members only: one active membership per member and subteam, so no duplicates."""
        return queryset.filter(memberships__subteam=value, memberships__ended__isnull=True)


class TaskFilter(df.FilterSet):
    subteam = subteam_filter()
    assignee = UsernameFilter(field_name="assignees", help_text="Username of an assignee.")

    class Meta:
        model = Task
        fields = ["subteam", "status", "assignee", "goal"]


class GoalFilter(df.FilterSet):
    subteam = subteam_filter(project_wide=True)
    project_wide = df.BooleanFilter(
        field_name="subteam",
        lookup_expr="isnull",
        help_text="true: only project-wide goals; false: only subteams'.",
    )

    class Meta:
        model = Goal
        fields = ["subteam", "project_wide", "status"]


class MilestoneFilter(df.FilterSet):
    subteam = subteam_filter(project_wide=True)
    project_wide = df.BooleanFilter(
        field_name="subteam",
        lookup_expr="isnull",
        help_text="true: only project milestones; false: subteams'.",
    )

    class Meta:
        model = Milestone
        fields = ["subteam", "project_wide", "done"]
