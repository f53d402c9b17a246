"""/api/v1/reservations/ and /api/v1/clusters/<id>/availability/.

Read: any signed-in user. Book: members for their own subteams, admins for any; approve and reject:
admins; cancel: the requester, the subteam's leads, admins (the `lending.access` predicates). Every
write is a `lending.services` call, so the rules and messages are the web form's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters as df
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from lending import access, services
from lending.models import Reservation, ReservationEvent
from portal.access import member_of
from portal.api.errors import service_errors
from portal.api.filters import UsernameFilter, subteam_filter
from portal.api.permissions import require
from portal.api.serializers import SubteamSlugField
from portal.models import Member
from scheduler.models import Cluster

MAX_AVAILABILITY = dt.timedelta(days=31)


class ReservationEventSerializer(serializers.ModelSerializer[ReservationEvent]):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = ReservationEvent
        fields = ["at", "kind", "actor", "changes", "note"]

    def get_actor(self, obj: ReservationEvent) -> str | None:
        return obj.actor.username if obj.actor else None


class ReservationSerializer(serializers.ModelSerializer[Reservation]):
    subteam: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True
    )
    requester = serializers.SerializerMethodField()
    approver = serializers.SerializerMethodField()
    held_gpus = serializers.IntegerField(read_only=True)

    class Meta:
        model = Reservation
        fields = [
            "id", "subteam", "cluster", "requester", "gpus", "gpu_type", "nodes", "held_gpus", "start",
            "end", "purpose", "state", "approver", "decision_note", "auto_approved", "slurm_name",
            "slurm_nodes", "sync_state", "sync_error", "sync_attempts", "sync_retry_at", "not_enforced_since",
            "idle_flagged_at", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_requester(self, obj: Reservation) -> str:
        return obj.requester.username

    def get_approver(self, obj: Reservation) -> str | None:
        return obj.approver.username if obj.approver else None


class ReservationDetailSerializer(ReservationSerializer):
    events = ReservationEventSerializer(many=True, read_only=True)

    class Meta(ReservationSerializer.Meta):
        fields = [*ReservationSerializer.Meta.fields, "events"]
        read_only_fields = fields


class ReservationRequestSerializer(serializers.Serializer[Any]):
    subteam = SubteamSlugField()
    cluster = serializers.PrimaryKeyRelatedField(queryset=Cluster.objects.all())
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    purpose = serializers.CharField(max_length=200)
    gpus = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    gpu_type = serializers.CharField(required=False, allow_blank=True, default="", max_length=32)
    nodes = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)


class WindowChangeSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class DecisionSerializer(serializers.Serializer[Any]):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ReservationFilter(df.FilterSet):
    subteam = subteam_filter()
    requester = UsernameFilter(field_name="requester", help_text="Username of who asked.")
    cluster = df.ModelChoiceFilter(queryset=Cluster.objects.all(), help_text="Cluster id.")

    class Meta:
        model = Reservation
        fields = ["subteam", "state", "requester", "cluster"]


def _member(request: Request) -> Member:
    me = member_of(request.user)
    require(me is not None)
    assert me is not None
    return me


@extend_schema_view(
    list=extend_schema(
        summary="List GPU bookings", description="Filter with `?subteam=&state=&requester=&cluster=`."
    ),
    retrieve=extend_schema(summary="One booking, with its history"),
)
@extend_schema(tags=["reservations"])
class ReservationViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Reservation]):
    """GPU bookings (the lending list). An approved booking becomes a Slurm reservation of whole nodes
    (`tanuki-<id>`) that the subteam's jobs use while it lasts."""

    permission_classes = [IsAuthenticated]
    filterset_class = ReservationFilter
    queryset = Reservation.objects.select_related("subteam", "requester__user", "approver__user", "cluster")

    def get_queryset(self) -> QuerySet[Reservation]:
        rows = super().get_queryset().order_by("-start", "-pk")
        if self.action == "retrieve":
            rows = rows.prefetch_related("events__actor__user")
        return rows

    def get_serializer_class(self) -> Any:
        if self.action == "create":
            return ReservationRequestSerializer
        if self.action == "retrieve":
            return ReservationDetailSerializer
        if self.action in ("approve", "reject"):
            return DecisionSerializer
        if self.action == "partial_update":
            return WindowChangeSerializer
        return ReservationSerializer

    def _out(self, reservation: Reservation, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().prefetch_related("events__actor__user").get(pk=reservation.pk)
        return Response(
            ReservationDetailSerializer(fresh, context=self.get_serializer_context()).data, status=code
        )

    @extend_schema(
        summary="Book GPUs",
        description="Members book for their own subteams, admins for any. Either `gpus` (whole nodes "
        "are reserved) or `nodes`. Within the subteam's quota it is approved at once.",
        request=ReservationRequestSerializer,
        responses={201: ReservationDetailSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ReservationRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        require(access.can_book_gpus(request.user, data["subteam"].pk))
        with service_errors():
            reservation = services.request_reservation(_member(request), **data)
        response = self._out(reservation, status.HTTP_201_CREATED)
        response["Location"] = reverse("api:reservation-detail", args=[reservation.pk])
        return response

    @extend_schema(
        summary="Move or resize a booking (requester, subteam lead, admin)",
        description="A new `start` and `end`, checked like a new booking; the Slurm reservation follows.",
        request=WindowChangeSerializer,
        responses=ReservationDetailSerializer,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        reservation = get_object_or_404(self.get_queryset(), pk=kwargs["pk"])
        if not access.can_change_reservation(request.user, reservation.requester_id, reservation.subteam_id):
            raise exceptions.PermissionDenied(
                "You may change only your own bookings (leads: their subteam's)."
            )
        window = WindowChangeSerializer(data=request.data)
        window.is_valid(raise_exception=True)
        with service_errors():
            services.change_window(_member(request), reservation, **window.validated_data)
        return self._out(reservation)

    def _decide(self, request: Request, pk: str | None, approve: bool) -> Response:
        if not access.can_decide_reservation(request.user):
            raise exceptions.PermissionDenied(_("Only the management team approves or rejects bookings."))
        reservation = get_object_or_404(self.get_queryset(), pk=pk)
        decision = DecisionSerializer(data=request.data)
        decision.is_valid(raise_exception=True)
        with service_errors():
            if approve:
                services.approve(_member(request), reservation, decision.validated_data["note"])
            else:
                services.reject(_member(request), reservation, decision.validated_data["note"])
        return self._out(reservation)

    @extend_schema(
        summary="Approve a booking (admins)",
        request=DecisionSerializer,
        responses=ReservationDetailSerializer,
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def approve(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, pk, approve=True)

    @extend_schema(
        summary="Reject a booking (admins; a note is required)",
        request=DecisionSerializer,
        responses=ReservationDetailSerializer,
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(request, pk, approve=False)

    @extend_schema(
        summary="Cancel a booking (requester, subteam lead, admin)",
        request=None,
        responses=ReservationDetailSerializer,
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        reservation = get_object_or_404(self.get_queryset(), pk=pk)
        if not access.can_change_reservation(request.user, reservation.requester_id, reservation.subteam_id):
            raise exceptions.PermissionDenied(
                "You may cancel only your own bookings (leads: their subteam's)."
            )
        with service_errors():
            services.cancel(_member(request), reservation)
        return self._out(reservation)


class SlotSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    total_gpus = serializers.IntegerField()
    booked_gpus = serializers.IntegerField()
    free_gpus = serializers.IntegerField()
    unavailable_gpus = serializers.IntegerField()
    conflicts = serializers.SerializerMethodField()

    def get_conflicts(self, slot: services.Slot) -> list[int]:
        return [r.pk for r in slot.conflicts]


class WindowSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start = attrs.get("start") or timezone.now()
        end = attrs.get("end") or start + dt.timedelta(days=1)
        if end <= start:
            raise serializers.ValidationError({"end": [_("The end must be after the start.")]})
        if end - start > MAX_AVAILABILITY:
            raise serializers.ValidationError({"end": [_("At most 31 days at a time.")]})
        return {"start": start, "end": end}


class AvailabilityView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["reservations"],
        summary="Free GPUs per hour on a cluster",
        parameters=[WindowSerializer],
        responses=SlotSerializer(many=True),
        description="Hourly slots over `?start=&end=` (ISO 8601; default: the next 24 hours): the default "
        "partition's GPUs, booked (the peak within the hour), on drained or down nodes, and free.",
    )
    def get(self, request: Request, pk: int) -> Response:
        cluster = get_object_or_404(Cluster, pk=pk)
        window = WindowSerializer(data=request.query_params)
        window.is_valid(raise_exception=True)
        slots = services.availability(cluster, window.validated_data["start"], window.validated_data["end"])
        return Response(SlotSerializer(slots, many=True).data)
