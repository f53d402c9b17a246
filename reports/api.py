"""/api/v1/reports/: weekly reports: list, read, start or regenerate a draft, edit the lead's text,
publish; and the management meeting's agenda for a week.

Read: any signed-in user (anonymous: 401). Start, edit, publish: the subteam's leads and admins
(`reports.access.can_write_report`), else 403 and nothing changes. Writes are `reports.services` calls.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters as df
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from portal.access import member_of
from portal.api.errors import service_errors
from portal.api.filters import subteam_filter
from portal.api.permissions import require
from portal.api.serializers import SubteamSlugField, UsernameField
from reports import access, agenda, services, weeks
from reports.models import WeeklyReport

# --- serializers ------------------------------------------------------------------------------------------


class WeeklyReportSerializer(serializers.ModelSerializer[WeeklyReport]):
    subteam = SubteamSlugField(read_only=True)
    author = UsernameField(read_only=True, allow_null=True)
    updated_by = UsernameField(read_only=True, allow_null=True)
    published_by = UsernameField(read_only=True, allow_null=True)
    web_url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = WeeklyReport
        fields = [
            "id",
            "subteam",
            "week",
            "state",
            "body",
            "issues",
            "revision",
            "generated_at",
            "author",
            "created_at",
            "updated_at",
            "updated_by",
            "published_at",
            "published_by",
            "web_url",
        ]
        read_only_fields = fields


class WeeklyReportDetailSerializer(WeeklyReportSerializer):
    """With the week's data: as generated (a draft) or as published (the snapshot)."""

    class Meta(WeeklyReportSerializer.Meta):
        fields = [*WeeklyReportSerializer.Meta.fields, "data"]
        read_only_fields = fields


class DraftSerializer(serializers.Serializer[dict[str, Any]]):
    subteam = SubteamSlugField()
    week = serializers.DateField(required=False, help_text="Any day of the week; default: this week.")


class EditSerializer(serializers.Serializer[dict[str, Any]]):
    body = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    issues = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    revision = serializers.IntegerField(
        min_value=0,
        help_text="The report's `revision` you started from: a later save by someone else is a 409.",
    )


class AgendaItemSerializer(serializers.Serializer[Any]):
    subteam = serializers.CharField(source="subteam.slug")
    level = serializers.CharField(source="level.css", help_text="behind, risk or ok (portal.health)")
    report = serializers.IntegerField(source="report.pk", allow_null=True, default=None)
    report_state = serializers.CharField(source="report.state", allow_null=True, default=None)
    issues = serializers.CharField()
    from_snapshot = serializers.BooleanField(help_text="From the published report, not live data.")
    blocked_tasks = serializers.ListField(source="blocked", child=serializers.DictField())
    goals = serializers.ListField(child=serializers.DictField())
    late_milestones = serializers.ListField(source="milestones", child=serializers.DictField())


class AgendaSerializer(serializers.Serializer[Any]):
    week = serializers.DateField()
    items = AgendaItemSerializer(many=True)


# --- views ------------------------------------------------------------------------------------------------


class WeeklyReportFilter(df.FilterSet):
    subteam = subteam_filter()
    week = df.DateFilter(method="filter_week", help_text="Any day of the week.")

    class Meta:
        model = WeeklyReport
        fields = ["subteam", "week", "state"]

    def filter_week(
        self, queryset: QuerySet[WeeklyReport], name: str, value: dt.date
    ) -> QuerySet[WeeklyReport]:
        return queryset.filter(week=weeks.monday_of(value))


@extend_schema_view(
    list=extend_schema(
        summary="List weekly reports", description="Newest week first. `?subteam=&week=&state=`."
    ),
    retrieve=extend_schema(summary="One report, with the week's data"),
)
@extend_schema(tags=["reports"])
class WeeklyReportViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[WeeklyReport],
):
    """A subteam's weekly report: the week's data (tasks done and their notes, blocked tasks, goal
    changes, jobs and GPU-hours against bookings, new scores) and the lead's own text."""

    filterset_class = WeeklyReportFilter
    queryset = WeeklyReport.objects.select_related(
        "subteam", "author__user", "updated_by__user", "published_by__user"
    ).order_by("-week", "subteam__name")
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self) -> QuerySet[WeeklyReport]:
        reports = super().get_queryset()
        return reports.defer("data") if self.action == "list" else reports

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "list":
            return WeeklyReportSerializer
        if self.action == "create":
            return DraftSerializer
        if self.action == "partial_update":
            return EditSerializer
        if self.action == "agenda":
            return AgendaSerializer
        return WeeklyReportDetailSerializer

    def _answer(self, report: WeeklyReport, code: int = status.HTTP_200_OK) -> Response:
        report = self.get_queryset().get(pk=report.pk)
        return Response(
            WeeklyReportDetailSerializer(report, context=self.get_serializer_context()).data, code
        )

    @extend_schema(
        summary="Start or regenerate a draft",
        description="The subteam's report for the week (default: this week): started from the week's data "
        "(201), or its data generated afresh if it is a draft (200; the lead's text is kept). A published "
        "report is returned unchanged. Leads of the subteam and admins.",
        responses={200: WeeklyReportDetailSerializer, 201: WeeklyReportDetailSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = DraftSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        subteam = serializer.validated_data["subteam"]
        week = weeks.monday_of(serializer.validated_data.get("week") or weeks.this_week())
        require(access.can_write_report(request.user, subteam.pk))
        existed = WeeklyReport.objects.filter(subteam=subteam, week=week).exists()
        with service_errors("week"):
            report = services.draft(subteam, week, member_of(request.user))
        return self._answer(report, status.HTTP_200_OK if existed else status.HTTP_201_CREATED)

    @extend_schema(
        summary="Edit the lead's text",
        description="`body` and `issues` (Markdown) with the `revision` you read: if someone saved after "
        "that, 409 and nothing changes. Leads of the subteam and admins.",
        request=EditSerializer,
        responses={200: WeeklyReportDetailSerializer, 409: None},
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        report = self.get_object()
        require(access.can_write_report_obj(request.user, report))
        serializer = EditSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        text = {"body": report.body, "issues": report.issues, **serializer.validated_data}
        try:
            services.edit(member_of(request.user), report, **text)
        except services.ServiceError as error:
            return Response({"detail": str(error)}, status=status.HTTP_409_CONFLICT)
        return self._answer(report)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.http_method_not_allowed(request)  # PATCH only: the text and the revision it replaces

    @extend_schema(
        summary="Publish a draft",
        description="Freezes the week's data as it is now and posts the report to the subteam's Slack "
        "channel (once). Publishing a published report changes nothing. Leads of the subteam and admins.",
        request=None,
        responses={200: WeeklyReportDetailSerializer},
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def publish(self, request: Request, pk: str | None = None) -> Response:
        report = self.get_object()
        require(access.can_write_report_obj(request.user, report))
        services.publish(member_of(request.user), report)
        return self._answer(report)

    @extend_schema(
        summary="The management meeting's agenda",
        description="Every subteam with something to discuss (blocked tasks, goals at risk or late, late "
        "milestones, the issues in its report), worst first. `?week=` any day of the week (default: this week).",
        parameters=[OpenApiParameter("week", OpenApiTypes.DATE, required=False)],
        responses={200: AgendaSerializer},
    )
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)
    def agenda(self, request: Request) -> Response:
        week = weeks.parse(request.query_params.get("week", "this"))
        if week is None or week > weeks.this_week():
            raise ValidationError({"week": ["Give a date (YYYY-MM-DD) in a week that has begun."]})
        rows = [row for row in agenda.agenda(week) if row.has_items]
        return Response(AgendaSerializer({"week": week, "items": rows}).data)
