"""The /api/v1/ viewsets.

Read: any signed-in user (anonymous: 401). Write: the `portal.access` predicates, through the
permission classes in `portal.api.permissions` for an existing object and `require()` for the subteam
named in a payload (create, or a move to another subteam: allowed on the old *and* the new subteam).
Every write is a `portal.services` call (in the serializers' create/update and in perform_destroy).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from portal import access, services
from portal.api import filters, serializers
from portal.api.permissions import GoalPermission, MilestonePermission, TaskPermission, require
from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task


def _actor(request: Request) -> Member | None:
    return access.member_of(request.user)


@extend_schema_view(
    list=extend_schema(
        summary="List members", description="Filter with `?subteam=<slug>` (current members)."
    ),
    retrieve=extend_schema(summary="One member, by username"),
)
@extend_schema(tags=["members"])
class MemberViewSet(viewsets.ReadOnlyModelViewSet[Member]):
    """Team members, looked up by the username they sign in with (`/api/v1/members/<username>/`).

    `onboarding` is filled in only for admins and for the member themself; otherwise it is null.
    """

    serializer_class = serializers.MemberSerializer
    filterset_class = filters.MemberFilter
    lookup_field = "user__username"
    lookup_url_kwarg = "username"
    lookup_value_regex = r"[\w.@+-]+"
    queryset = Member.objects.select_related("user").prefetch_related(
        Prefetch(
            "memberships",
            queryset=Membership.objects.filter(ended__isnull=True).select_related("subteam"),
            to_attr="current_memberships",
        )
    )


@extend_schema_view(
    list=extend_schema(summary="List subteams"),
    retrieve=extend_schema(summary="One subteam, by slug"),
)
@extend_schema(tags=["subteams"])
class SubteamViewSet(viewsets.ReadOnlyModelViewSet[Subteam]):
    """Subteams, looked up by slug, with the number of current members."""

    serializer_class = serializers.SubteamSerializer
    lookup_field = "slug"
    # An aggregate drops Meta.ordering, so it is repeated for stable pages.
    queryset = Subteam.objects.annotate(
        member_count=Count("memberships", filter=Q(memberships__ended__isnull=True))
    ).order_by("-is_management", "name")


class _WriteThroughServices(viewsets.ModelViewSet[Any]):
    """Creates and updates are checked on the payload's subteam, then saved by the serializer (which
    calls the service); the response is the object re-read with the list queryset."""

    def check_subteam(self, subteam: Subteam | None) -> None:
        """Refuse unless the user may put an object of this kind into this subteam."""
        raise NotImplementedError

    def check_move(self, instance: Any, subteam: Subteam | None) -> None:
        """Refuse unless the user may still write the object once it is in the new subteam."""
        self.check_subteam(subteam)

    def _reread(self, serializer: BaseSerializer[Any]) -> None:
        assert serializer.instance is not None
        serializer.instance = self.get_queryset().get(pk=serializer.instance.pk)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        self.check_subteam(serializer.validated_data.get("subteam"))
        serializer.save()
        self._reread(serializer)

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        instance = serializer.instance
        assert instance is not None
        if "subteam" in serializer.validated_data:
            new = serializer.validated_data["subteam"]
            if (new.pk if new is not None else None) != instance.subteam_id:
                self.check_move(instance, new)
        serializer.save()
        self._reread(serializer)


@extend_schema_view(
    list=extend_schema(summary="List tasks"),
    create=extend_schema(
        summary="Create a task", description="Members of the subteam, its leads and admins."
    ),
    update=extend_schema(summary="Replace a task"),
    partial_update=extend_schema(summary="Change a task"),
    destroy=extend_schema(summary="Delete a task", description="The subteam's leads and admins."),
)
@extend_schema(tags=["tasks"])
class TaskViewSet(_WriteThroughServices):
    """Tasks. `subteam` is a slug, `assignees` a list of usernames, `goal` a goal id."""

    serializer_class = serializers.TaskSerializer
    filterset_class = filters.TaskFilter
    permission_classes = [IsAuthenticated, TaskPermission]
    queryset = Task.objects.select_related("subteam", "created_by__user").prefetch_related(
        Prefetch("assignees", queryset=Member.objects.select_related("user"))
    )

    def check_subteam(self, subteam: Subteam | None) -> None:
        require(subteam is not None and access.can_create_task(self.request.user, subteam.pk))

    def check_move(self, instance: Task, subteam: Subteam | None) -> None:
        require(
            access.can_move_task(self.request.user, instance, subteam.pk if subteam is not None else None)
        )

    def perform_destroy(self, instance: Task) -> None:
        services.delete_task(_actor(self.request), instance)


@extend_schema_view(
    list=extend_schema(summary="List goals"),
    create=extend_schema(
        summary="Create a goal", description="A subteam's goal: its leads and admins. Project-wide: admins."
    ),
    update=extend_schema(
        summary="Replace a goal", description="`reason` is required and kept in the history."
    ),
    partial_update=extend_schema(
        summary="Change a goal", description="`reason` is required and kept in the history."
    ),
    destroy=extend_schema(summary="Delete a goal"),
)
@extend_schema(tags=["goals"])
class GoalViewSet(_WriteThroughServices):
    """Goals of a subteam (`subteam` slug) or of the whole project (`subteam` null). Every change is
    recorded with its reason: see `revisions`."""

    serializer_class = serializers.GoalSerializer
    filterset_class = filters.GoalFilter
    permission_classes = [IsAuthenticated, GoalPermission]
    queryset = Goal.objects.select_related("subteam", "created_by__user")

    def check_subteam(self, subteam: Subteam | None) -> None:
        require(access.can_manage_goal(self.request.user, subteam.pk if subteam is not None else None))

    def perform_destroy(self, instance: Goal) -> None:
        services.delete_goal(_actor(self.request), instance)

    @extend_schema(summary="A goal's history", responses=serializers.GoalRevisionSerializer(many=True))
    @action(
        detail=True,
        methods=["get"],
        serializer_class=serializers.GoalRevisionSerializer,
        filter_backends=[],
    )
    def revisions(self, request: Request, pk: str | None = None) -> Response:
        """Every change to the goal, newest first: who, when, what (field -> [old, new]) and why."""
        goal = self.get_object()
        revisions: QuerySet[GoalRevision] = goal.revisions.select_related("author__user")
        page = self.paginate_queryset(revisions)
        if page is not None:
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return Response(self.get_serializer(revisions, many=True).data)


@extend_schema_view(
    list=extend_schema(summary="List milestones"),
    create=extend_schema(summary="Create a milestone"),
    update=extend_schema(summary="Replace a milestone"),
    partial_update=extend_schema(summary="Change a milestone"),
    destroy=extend_schema(summary="Delete a milestone"),
)
@extend_schema(tags=["milestones"])
class MilestoneViewSet(_WriteThroughServices):
    """Milestones of a subteam (`subteam` slug) or of the whole project (`subteam` null)."""

    serializer_class = serializers.MilestoneSerializer
    filterset_class = filters.MilestoneFilter
    permission_classes = [IsAuthenticated, MilestonePermission]
    queryset = Milestone.objects.select_related("subteam")

    def check_subteam(self, subteam: Subteam | None) -> None:
        require(access.can_manage_milestone(self.request.user, subteam.pk if subteam is not None else None))

    def perform_destroy(self, instance: Milestone) -> None:
        services.delete_milestone(_actor(self.request), instance)
