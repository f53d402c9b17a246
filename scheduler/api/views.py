"""/api/v1/jobs/ and /api/v1/clusters/.

Read: any signed-in user (anonymous: 401). Submit: members for their own subteams, admins for any;
cancel: the owner, the subteam's leads, admins (the `scheduler.access` predicates). Writes are
`scheduler.services` calls; nothing here talks to a cluster (the worker does).
"""

from __future__ import annotations

from typing import Any

import django_filters as df
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch, QuerySet
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from portal.access import member_of
from portal.api.filters import UsernameFilter, subteam_filter
from portal.api.permissions import require
from scheduler import access, fixes, logs, services
from scheduler.api import serializers as job_serializers
from scheduler.models import Cluster, Job, JobEvent, JobLogChunk, JobTemplate, Node, Partition, Pipeline


class JobFilter(df.FilterSet):
    subteam = subteam_filter()
    owner = UsernameFilter(field_name="owner", help_text="Username of the job's owner.")
    cluster = df.ModelChoiceFilter(queryset=Cluster.objects.all(), help_text="Cluster id.")

    class Meta:
        model = Job
        fields = ["subteam", "state", "owner", "cluster"]


class JobPermission(BasePermission):
    """Anyone signed in reads jobs; cancelling one asks `access.can_cancel_job`."""

    message = _("You may cancel only your own jobs (leads: their subteam's; admins: any).")

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        assert isinstance(obj, Job)
        if getattr(view, "action", None) == "fix":
            return access.can_resubmit_job(request.user, obj)
        return access.can_cancel_job(request.user, obj)


class LogQuerySerializer(serializers.Serializer[dict[str, Any]]):
    stream = serializers.ChoiceField(choices=JobLogChunk.Stream.choices, default=JobLogChunk.Stream.STDOUT)
    offset = serializers.IntegerField(min_value=0, default=0)


@extend_schema_view(
    list=extend_schema(
        summary="List jobs",
        description="Newest first. Filter with `?subteam=<slug>&state=&owner=<username>&cluster=<id>`.",
    ),
    retrieve=extend_schema(summary="One job, with its sbatch script and timeline"),
)
@extend_schema(tags=["jobs"])
class JobViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Job]):
    """Slurm jobs submitted through the portal. A job starts in `submitting`; the scheduler's worker
    sends it to the cluster and follows it to a terminal state (`completed`, `failed`, `cancelled`,
    `timeout`, `out_of_memory`, `node_fail`, `preempted`)."""

    serializer_class = job_serializers.JobSerializer
    filterset_class = JobFilter
    permission_classes = [IsAuthenticated, JobPermission]
    queryset = Job.objects.select_related("subteam", "owner__user", "cluster")

    def get_queryset(self) -> QuerySet[Job]:
        jobs = super().get_queryset()
        if self.action == "retrieve":
            jobs = jobs.prefetch_related(
                Prefetch("events", queryset=JobEvent.objects.select_related("actor__user"))
            )
        return jobs

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "create":
            return job_serializers.JobRequestSerializer
        if self.action == "retrieve":
            return job_serializers.JobDetailSerializer
        return job_serializers.JobSerializer

    @extend_schema(
        summary="Submit a job (or a chain)",
        description=(
            "Members submit for their own subteams, admins for any. With `then`, each further step "
            "runs only if the one before it succeeded (Slurm `afterok`). Nothing is recorded when "
            "any step is invalid."
        ),
        request=job_serializers.JobRequestSerializer,
        responses={201: job_serializers.JobCreatedSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        require(access.can_submit_job(request.user, serializer.validated_data["subteam"].pk))
        require(member_of(request.user) is not None)
        jobs: list[Job] = serializer.save()  # type: ignore[assignment]
        stored = {job.pk: job for job in self.get_queryset().filter(pk__in=[j.pk for j in jobs])}
        first = stored[jobs[0].pk]
        context = {**self.get_serializer_context(), "then": [stored[job.pk] for job in jobs[1:]]}
        data = job_serializers.JobCreatedSerializer(first, context=context).data
        location = reverse("api:job-detail", args=[first.pk])
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})

    @extend_schema(
        summary="Cancel a job",
        description=(
            "The owner, the subteam's leads and admins. A job not yet on the cluster is cancelled at "
            "once; otherwise the worker runs `scancel` and the state follows. Cancelling a finished "
            "job changes nothing."
        ),
        request=None,
        responses=job_serializers.JobSerializer,
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        services.cancel_job(member_of(request.user), job)
        fresh = self.get_queryset().get(pk=job.pk)
        return Response(job_serializers.JobSerializer(fresh, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Resubmit a failed job with its diagnosis's fix",
        description=(
            "`action` is one of the fixes the job's `diagnosis` offers: `resume` (from the run's last "
            "checkpoint), `exclude_node` (sbatch --exclude the node to blame), `halve_micro_batch` "
            "(accumulation doubled: the same global batch), `extend_time` (within the partition's limit). "
            "Whoever may resubmit the job; answers the new job. Nothing is submitted when the fix does "
            "not apply (400 with why)."
        ),
        request=job_serializers.FixRequestSerializer,
        responses={201: job_serializers.JobSerializer},
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def fix(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        body = job_serializers.FixRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        me = member_of(request.user)
        require(me is not None)
        assert me is not None
        try:
            new = fixes.fix_job(me, job, body.validated_data["action"])
        except DjangoValidationError as error:
            detail = error.message_dict if hasattr(error, "error_dict") else {"action": error.messages}
            raise serializers.ValidationError(detail) from error
        fresh = self.get_queryset().get(pk=new.pk)
        data = job_serializers.JobSerializer(fresh, context=self.get_serializer_context()).data
        location = reverse("api:job-detail", args=[new.pk])
        return Response(data, status=status.HTTP_201_CREATED, headers={"Location": location})

    @extend_schema(
        summary="A job's stdout or stderr",
        description=(
            "The log as stored so far, from a byte offset. Poll with `offset=next_offset` to follow it; "
            "`final` says the job ended and its log has been read in full."
        ),
        parameters=[
            OpenApiParameter("stream", OpenApiTypes.STR, enum=JobLogChunk.Stream.values, default="stdout"),
            OpenApiParameter("offset", OpenApiTypes.INT, default=0, description="Byte offset."),
        ],
        responses=job_serializers.JobLogSerializer,
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def logs(self, request: Request, pk: str | None = None) -> Response:
        job = self.get_object()
        query = LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        stream, offset = query.validated_data["stream"], query.validated_data["offset"]
        text, next_offset = logs.log_text(job, stream, offset)
        stored = job.stdout_offset if stream == JobLogChunk.Stream.STDOUT else job.stderr_offset
        return Response(
            {
                "stream": stream,
                "offset": offset,
                "text": text,
                "next_offset": next_offset,
                "final": job.is_terminal and job.logs_final and next_offset >= stored,
            }
        )


@extend_schema_view(
    list=extend_schema(summary="List clusters"),
    retrieve=extend_schema(summary="One cluster, with its partitions, nodes and node incidents"),
)
@extend_schema(tags=["clusters"])
class ClusterViewSet(viewsets.ReadOnlyModelViewSet[Cluster]):
    """The Slurm clusters jobs go to, with their partitions and nodes as the worker last read them.
    `status` is `reachable`, `unreachable`, `host_key_mismatch` (nothing is sent until an admin
    trusts the new key) or `unknown`."""

    serializer_class = job_serializers.ClusterSerializer
    queryset = Cluster.objects.prefetch_related(
        Prefetch("partitions", queryset=Partition.objects.order_by("name")),
        Prefetch("nodes", queryset=Node.objects.order_by("name")),
    )

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "retrieve":
            return job_serializers.ClusterDetailSerializer
        return job_serializers.ClusterSerializer


@extend_schema_view(
    list=extend_schema(summary="List pipelines", description="Newest first. `?subteam=<slug>`."),
    retrieve=extend_schema(summary="One pipeline, with its steps and where it stopped"),
)
@extend_schema(tags=["pipelines"])
class PipelineViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Pipeline]):
    """Training steps submitted together (e.g. SFT → DPO → eval): each runs only if the one before it
    succeeded (Slurm `afterok`), and a step without a model of its own reads the previous step's
    output. A failed step cancels the ones after it."""

    serializer_class = job_serializers.PipelineSerializer
    permission_classes = [IsAuthenticated]
    queryset = Pipeline.objects.select_related("subteam", "owner__user").prefetch_related(
        Prefetch("jobs", queryset=Job.objects.select_related("subteam", "owner__user", "cluster"))
    )

    def get_queryset(self) -> QuerySet[Pipeline]:
        pipelines = super().get_queryset()
        slug = self.request.query_params.get("subteam")
        return pipelines.filter(subteam__slug=slug) if slug else pipelines

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "create":
            return job_serializers.PipelineRequestSerializer
        return job_serializers.PipelineSerializer

    @extend_schema(
        summary="Submit a pipeline",
        request=job_serializers.PipelineRequestSerializer,
        responses={201: job_serializers.PipelineSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        require(access.can_submit_job(request.user, data["subteam"].pk))
        owner = member_of(request.user)
        require(owner is not None)
        assert owner is not None
        try:
            pipeline = services.submit_pipeline(owner, data["name"], data["specs"])
        except DjangoValidationError as error:
            raise serializers.ValidationError(job_serializers.pipeline_errors(error)) from error
        fresh = self.get_queryset().get(pk=pipeline.pk)
        body = job_serializers.PipelineSerializer(fresh, context=self.get_serializer_context()).data
        location = reverse("api:pipeline-detail", args=[pipeline.pk])
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})


class JobTemplatePermission(BasePermission):
    message = _("You may delete only templates you saved (leads: their subteam's; admins: any).")

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        assert isinstance(obj, JobTemplate)
        return access.can_delete_job_template(request.user, obj)


@extend_schema(tags=["job templates"])
class JobTemplateViewSet(
    mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet[JobTemplate]
):
    """A subteam's saved job or pipeline submissions (the form's fields), to start new runs from.
    Saving under an existing name replaces that template."""

    serializer_class = job_serializers.JobTemplateSerializer
    permission_classes = [IsAuthenticated, JobTemplatePermission]
    queryset = JobTemplate.objects.select_related("subteam", "created_by__user")

    def get_queryset(self) -> QuerySet[JobTemplate]:
        templates = super().get_queryset()
        slug = self.request.query_params.get("subteam")
        return templates.filter(subteam__slug=slug) if slug else templates

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        require(access.can_save_job_template(request.user, data["subteam"].pk))
        owner = member_of(request.user)
        require(owner is not None)
        assert owner is not None
        fields = data.get("fields") or {}
        if not isinstance(fields, dict):
            raise serializers.ValidationError({"fields": [_("A mapping of form fields.")]})
        try:
            template = services.save_template(
                owner,
                subteam=data["subteam"],
                name=data["name"],
                kind=data["kind"],
                fields=fields,
                description=data.get("description", ""),
            )
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from error
        body = job_serializers.JobTemplateSerializer(template, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance: JobTemplate) -> None:
        services.delete_template(member_of(self.request.user), instance)
