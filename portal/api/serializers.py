"""Serializers of the /api/v1/ resources.

Subteams are named by slug (`"subteam": "sft"`), members by the username they sign in with, goals
and tasks by id. Writes go through `portal.services` (never `Model.save()` here); the views check
permissions before calling `save()`.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.relations import PKOnlyObject

from portal import access, services
from portal.api.errors import service_errors
from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task, check_dates

# --- reference fields -----------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.STR)
class SubteamSlugField(serializers.SlugRelatedField[Subteam]):
    """A subteam by its slug; an unknown slug is a field error."""

    default_error_messages = {
        "does_not_exist": _("There is no subteam with the slug “{value}”."),
        "invalid": _("Give the subteam's slug as a string."),
    }

    def __init__(self, **kwargs: Any) -> None:
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", Subteam.objects.all())
        super().__init__(slug_field="slug", **kwargs)


@extend_schema_field(OpenApiTypes.STR)
class UsernameField(serializers.SlugRelatedField[Member]):
    """A member by the username they sign in with; an unknown username is a field error."""

    default_error_messages = {
        "does_not_exist": _("There is no member with the username “{value}”."),
        "invalid": _("Give the member's username as a string."),
    }

    def __init__(self, **kwargs: Any) -> None:
        if not kwargs.get("read_only"):
            kwargs.setdefault("queryset", Member.objects.select_related("user"))
        super().__init__(slug_field="user__username", **kwargs)

    def to_representation(self, value: Member | PKOnlyObject) -> str:
        assert isinstance(value, Member)
        return value.user.get_username()


def _actor(serializer: serializers.BaseSerializer[Any]) -> Member | None:
    """The signed-in member making the change (recorded as author / created_by)."""
    request = serializer.context.get("request")
    return access.member_of(request.user) if request is not None else None


def _check_dates(serializer: serializers.BaseSerializer[Any], attrs: dict[str, Any]) -> None:
    """Due before start is an error on `due_date`; a PATCH is checked against the stored dates."""
    instance = serializer.instance
    start = attrs.get("start_date", getattr(instance, "start_date", None))
    due = attrs.get("due_date", getattr(instance, "due_date", None))
    errors = check_dates(start, due)
    if errors:
        raise serializers.ValidationError(errors)


# --- people and subteams (read-only) -----------------------------------------------------------------


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    subteam = SubteamSlugField(read_only=True)
    subteam_name = serializers.CharField(source="subteam.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["subteam", "subteam_name", "role", "started"]
        read_only_fields = fields


class OnboardingSerializer(serializers.ModelSerializer[Member]):
    complete = serializers.BooleanField(source="onboarding_complete", read_only=True)

    class Meta:
        model = Member
        fields = [
            "has_cluster_account",
            "has_github",
            "has_huggingface",
            "has_wandb",
            "has_slack",
            "complete",
        ]
        read_only_fields = fields


class MemberSerializer(serializers.ModelSerializer[Member]):
    username = serializers.CharField(source="user.username", read_only=True)
    memberships = MembershipSerializer(
        source="current_memberships", many=True, read_only=True, help_text="Current memberships only."
    )
    onboarding = serializers.SerializerMethodField(
        help_text="Onboarding checklist; null unless you are an admin or this member."
    )

    class Meta:
        model = Member
        fields = [
            "username",
            "display_name",
            "slack_user_id",
            "github",
            "huggingface",
            "wandb",
            "cluster_account",
            "bio",
            "joined",
            "memberships",
            "onboarding",
        ]
        read_only_fields = fields

    @extend_schema_field(OnboardingSerializer(allow_null=True))
    def get_onboarding(self, member: Member) -> dict[str, Any] | None:
        request = self.context.get("request")
        if request is None or not access.can_see_onboarding(request.user, member):
            return None
        return OnboardingSerializer(member).data


class SubteamSerializer(serializers.ModelSerializer[Subteam]):
    member_count = serializers.IntegerField(read_only=True, help_text="Number of current members.")

    class Meta:
        model = Subteam
        fields = [
            "slug",
            "name",
            "name_ja",
            "purpose",
            "slack_channel",
            "is_management",
            "status_note",
            "member_count",
        ]
        read_only_fields = fields


# --- tasks ------------------------------------------------------------------------------------------


class TaskSerializer(serializers.ModelSerializer[Task]):
    subteam = SubteamSlugField(help_text="Slug of the subteam, e.g. `sft`.")
    assignees = UsernameField(many=True, required=False, help_text="Usernames of the assignees.")
    goal = serializers.PrimaryKeyRelatedField(
        queryset=Goal.objects.all(), allow_null=True, required=False, help_text="Id of the goal it serves."
    )
    is_overdue = serializers.BooleanField(read_only=True)
    created_by = UsernameField(read_only=True, allow_null=True)

    class Meta:
        model = Task
        fields = [
            "id",
            "subteam",
            "title",
            "description",
            "status",
            "priority",
            "assignees",
            "goal",
            "start_date",
            "due_date",
            "learnings",
            "is_overdue",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "is_overdue", "created_by", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_dates(self, attrs)
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Task:
        assignees = validated_data.pop("assignees", [])
        with service_errors():
            return services.create_task(_actor(self), assignees=assignees, **validated_data)

    def update(self, instance: Task, validated_data: dict[str, Any]) -> Task:
        assignees = validated_data.pop("assignees", None)
        with service_errors():
            return services.update_task(_actor(self), instance, assignees=assignees, **validated_data)


# --- goals ------------------------------------------------------------------------------------------

REASON_REQUIRED = _("Say why the goal changes: the reason is kept in its history.")


class GoalSerializer(serializers.ModelSerializer[Goal]):
    subteam = SubteamSlugField(
        allow_null=True, help_text="Slug of the subteam; null for a project-wide goal."
    )
    is_project_wide = serializers.BooleanField(read_only=True)
    progress = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="Percent from baseline to target; null when not measurable.",
    )
    created_by = UsernameField(read_only=True, allow_null=True)
    reason = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        help_text="Why the goal changes, kept in its history. Required on PUT/PATCH; optional on create.",
    )

    class Meta:
        model = Goal
        fields = [
            "id",
            "subteam",
            "is_project_wide",
            "title",
            "target",
            "metric_name",
            "metric_comparison",
            "metric_target",
            "metric_baseline",
            "metric_current",
            "progress",
            "start_date",
            "due_date",
            "status",
            "created_by",
            "created_at",
            "updated_at",
            "reason",
        ]
        read_only_fields = ["id", "is_project_wide", "progress", "created_by", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None and not attrs.get("reason", "").strip():
            raise serializers.ValidationError({"reason": [REASON_REQUIRED]})
        _check_dates(self, attrs)
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Goal:
        reason = validated_data.pop("reason", "").strip()
        with service_errors(service_error_field="reason"):
            return services.create_goal(_actor(self), reason=reason, **validated_data)

    def update(self, instance: Goal, validated_data: dict[str, Any]) -> Goal:
        reason = validated_data.pop("reason", "")
        with service_errors(service_error_field="reason"):
            services.update_goal(_actor(self), instance, validated_data, reason=reason)
        instance.refresh_from_db()
        return instance


class GoalRevisionSerializer(serializers.ModelSerializer[GoalRevision]):
    author = UsernameField(read_only=True, allow_null=True)
    is_creation = serializers.BooleanField(read_only=True)
    changes = serializers.DictField(
        read_only=True,
        help_text='Field name -> [old, new]; a creation also holds `"__created__": true`.',
    )

    class Meta:
        model = GoalRevision
        fields = ["id", "created_at", "author", "reason", "source", "changes", "is_creation"]
        read_only_fields = fields


# --- milestones -------------------------------------------------------------------------------------


class MilestoneSerializer(serializers.ModelSerializer[Milestone]):
    subteam = SubteamSlugField(
        allow_null=True, help_text="Slug of the subteam; null for a project milestone."
    )
    is_overdue = serializers.BooleanField(read_only=True)

    class Meta:
        model = Milestone
        fields = ["id", "subteam", "title", "date", "done", "description", "is_overdue"]
        read_only_fields = ["id", "is_overdue"]

    def create(self, validated_data: dict[str, Any]) -> Milestone:
        with service_errors():
            return services.create_milestone(_actor(self), **validated_data)

    def update(self, instance: Milestone, validated_data: dict[str, Any]) -> Milestone:
        with service_errors():
            return services.update_milestone(_actor(self), instance, **validated_data)
