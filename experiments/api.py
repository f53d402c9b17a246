"""REST API of experiments: data sets, sweeps, lineage and compare (wired in config/api_urls.py).

/api/v1/datasets/<id>/                 list, register (POST), read; `?subteam=<slug>&name=&state=`
/api/v1/sweeps/<id>/                   list, submit (POST), read (with its runs and their scores)
/api/v1/lineage/jobs/<uuid>/           the graph of a training job (data sets → job → model → scores)
/api/v1/lineage/results/<id>/          the graph behind an evaluation result
/api/v1/lineage/datasets/<id>/         every job, model and score that used a data set
/api/v1/compare/?jobs=<uuid>&results=<id>   config diff, data set diff, score deltas
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from django_filters import rest_framework as df
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from evals.models import EvalResult
from experiments import access, compare, datasets, lineage, sweeps
from experiments.models import Dataset, Sweep
from portal.access import member_of, require
from portal.api.errors import field_errors
from portal.api.filters import subteam_filter
from portal.api.serializers import SubteamSlugField
from scheduler import services
from scheduler.api.serializers import TrainingSerializer, chosen_cluster
from scheduler.models import Cluster, Job


class DatasetSerializer(serializers.ModelSerializer[Dataset]):
    subteam = SubteamSlugField()
    ref = serializers.CharField(read_only=True)
    derived_from = serializers.SlugRelatedField(slug_field="ref", read_only=True)  # type: ignore[var-annotated]

    class Meta:
        model = Dataset
        fields = [
            "id",
            "ref",
            "name",
            "version",
            "subteam",
            "cluster",
            "path",
            "is_directory",
            "rows",
            "size_bytes",
            "files",
            "sha256",
            "state",
            "check_message",
            "checked_at",
            "notes",
            "derived_from",
            "created_at",
        ]
        read_only_fields = fields


class DatasetRequestSerializer(serializers.Serializer[dict[str, Any]]):
    subteam = SubteamSlugField()
    cluster = serializers.PrimaryKeyRelatedField(queryset=Cluster.objects.all(), required=False)
    name = serializers.CharField(max_length=100)
    version = serializers.CharField(max_length=40)
    path = serializers.CharField(max_length=1000)
    notes = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    derived_from = serializers.CharField(
        max_length=150,
        required=False,
        allow_blank=True,
        help_text="name@version of the data set it came from.",
    )

    def validate_derived_from(self, value: str) -> Dataset | None:
        if not value:
            return None
        name, _sep, version = value.partition("@")
        found = Dataset.objects.filter(name=name, version=version).first()
        if found is None:
            raise serializers.ValidationError(f"{value} is not a registered data set.")
        return found


class DatasetFilter(df.FilterSet):  # type: ignore[misc]
    subteam = subteam_filter()
    name = df.CharFilter(field_name="name")
    state = df.ChoiceFilter(choices=Dataset.State.choices)

    class Meta:
        model = Dataset
        fields = ["subteam", "name", "state"]


class DatasetViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Dataset]):
    permission_classes = [IsAuthenticated]
    serializer_class = DatasetSerializer
    filterset_class = DatasetFilter
    queryset = Dataset.objects.select_related("subteam", "derived_from").order_by("name", "-created_at")

    @extend_schema(
        request=DatasetRequestSerializer, responses={201: DatasetSerializer, 200: DatasetSerializer}
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = DatasetRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        require(access.can_register_dataset(request.user, data["subteam"].pk))
        actor = member_of(request.user)
        require(actor is not None)
        assert actor is not None
        registration = datasets.Registration(
            subteam=data["subteam"],
            cluster=chosen_cluster(data),
            name=data["name"],
            version=data["version"],
            path=data["path"],
            notes=data.get("notes", ""),
            derived_from=data.get("derived_from"),
        )
        try:
            dataset, new = datasets.register(actor, registration)
        except DjangoValidationError as error:
            raise serializers.ValidationError(field_errors(error)) from error
        return Response(
            DatasetSerializer(dataset).data, status=status.HTTP_201_CREATED if new else status.HTTP_200_OK
        )


# --- sweeps ---------------------------------------------------------------------------------------------


class AxisSerializer(serializers.Serializer[dict[str, Any]]):
    field = serializers.CharField(max_length=64)
    values = serializers.ListField(child=serializers.JSONField(), max_length=sweeps.MAX_VALUES)


class EvalStepSerializer(serializers.Serializer[dict[str, Any]]):
    training = TrainingSerializer(help_text="The evaluation's fields (questions, judge_endpoint, …).")
    nodes = serializers.IntegerField(default=1)
    gpus_per_node = serializers.IntegerField(default=1)
    time_limit = serializers.IntegerField(default=30, help_text="Minutes.")


class SweepRequestSerializer(serializers.Serializer[dict[str, Any]]):
    """A training run's fields with some varied: `axes` [{field, values}], combined as a grid (every
    combination) or a list (the i-th values together); `eval` adds an MT-Bench evaluation after each."""

    name = serializers.CharField(max_length=56)
    subteam = SubteamSlugField()
    cluster = serializers.PrimaryKeyRelatedField(queryset=Cluster.objects.all(), required=False)
    kind = serializers.ChoiceField(choices=[(k.value, k.label) for k in Job.Kind.kinds_that_train()])
    training = TrainingSerializer()
    nodes = serializers.IntegerField(default=1)
    gpus_per_node = serializers.IntegerField(default=1)
    time_limit = serializers.IntegerField(default=60, help_text="Minutes.")
    partition = serializers.CharField(required=False, allow_blank=True, max_length=64)
    axes = AxisSerializer(many=True)
    mode = serializers.ChoiceField(choices=Sweep.Mode.choices, default=Sweep.Mode.GRID)
    eval = EvalStepSerializer(required=False, allow_null=True)


class SweepRunSerializer(serializers.Serializer[dict[str, Any]]):
    number = serializers.IntegerField()
    values = serializers.DictField()
    job = serializers.UUIDField()
    job_state = serializers.CharField()
    eval_job = serializers.UUIDField(allow_null=True)
    eval_state = serializers.CharField(allow_null=True)
    pipeline = serializers.IntegerField(allow_null=True)
    last_loss = serializers.FloatField(allow_null=True)
    result = serializers.IntegerField(allow_null=True)
    average = serializers.FloatField(allow_null=True)
    categories = serializers.DictField(allow_null=True)
    best = serializers.BooleanField()


class SweepSerializer(serializers.ModelSerializer[Sweep]):
    subteam = SubteamSlugField(read_only=True)
    owner = serializers.CharField(source="owner.user.username", read_only=True)
    runs = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = [
            "id",
            "name",
            "subteam",
            "owner",
            "cluster",
            "kind",
            "mode",
            "axes",
            "with_eval",
            "created_at",
            "runs",
        ]
        read_only_fields = fields

    @extend_schema(responses=SweepRunSerializer(many=True))
    def get_runs(self, sweep: Sweep) -> list[dict[str, Any]]:
        if not self.context.get("with_runs"):
            return []
        found = []
        for row in sweeps.table(sweep):
            run = row.run
            found.append(
                {
                    "number": run.number,
                    "values": run.values,
                    "job": run.job_id,
                    "job_state": run.job.state,
                    "eval_job": run.eval_job_id,
                    "eval_state": run.eval_job.state if run.eval_job is not None else None,
                    "pipeline": run.pipeline_id,
                    "last_loss": row.loss,
                    "result": row.result.pk if row.result is not None else None,
                    "average": row.score,
                    "categories": row.result.categories if row.result is not None else None,
                    "best": row.best,
                }
            )
        return found


class SweepViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Sweep]):
    permission_classes = [IsAuthenticated]
    serializer_class = SweepSerializer
    queryset = Sweep.objects.select_related("subteam", "owner__user").order_by("-created_at")

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "with_runs": self.action in ("retrieve", "create")}

    @extend_schema(request=SweepRequestSerializer, responses={201: SweepSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = SweepRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        require(access.can_submit_sweep(request.user, data["subteam"].pk))
        actor = member_of(request.user)
        require(actor is not None)
        assert actor is not None
        cluster = chosen_cluster(data)
        kind = data["kind"]
        base = services.JobSpec(
            subteam=data["subteam"],
            cluster=cluster,
            name=data["name"],
            command="",
            nodes=data["nodes"],
            gpus_per_node=data["gpus_per_node"],
            time_limit_minutes=data["time_limit"],
            partition=data.get("partition", ""),
            kind=kind,
            training=TrainingSerializer().request_for(kind, data["training"]),
        )
        eval_spec = None
        if data.get("eval"):
            e = data["eval"]
            eval_spec = services.JobSpec(
                subteam=data["subteam"],
                cluster=cluster,
                name="eval",
                command="",
                nodes=e["nodes"],
                gpus_per_node=e["gpus_per_node"],
                time_limit_minutes=e["time_limit"],
                partition=data.get("partition", ""),
                kind=Job.Kind.EVAL.value,
                training=TrainingSerializer().request_for(Job.Kind.EVAL.value, e["training"]),
                model_from_previous=True,
            )
        try:
            plan = sweeps.plan(
                name=data["name"],
                base=base,
                axes_raw=[(a["field"], list(a["values"])) for a in data["axes"]],
                mode=data["mode"],
                eval_spec=eval_spec,
            )
            sweep = sweeps.submit(actor, plan)
        except DjangoValidationError as error:
            raise serializers.ValidationError(field_errors(error)) from error
        return Response(
            SweepSerializer(sweep, context={"with_runs": True, "request": request}).data,
            status=status.HTTP_201_CREATED,
        )


# --- lineage and compare --------------------------------------------------------------------------------


class LineageView(APIView):
    """GET the lineage graph: nodes (id, kind: dataset|base|job|model|result, label, detail, url, focus)
    and edges (from → to), read left to right."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request: Request, what: str, pk: str) -> Response:
        if what == "jobs":
            try:
                job_id = uuid.UUID(pk)
            except ValueError:
                return Response({"detail": "Not found."}, status=404)
            job = get_object_or_404(Job.objects.only("pk"), pk=job_id)
            graph = lineage.for_job(job.pk)
        elif what == "results" and pk.isdigit():
            graph = lineage.for_result(get_object_or_404(EvalResult, pk=int(pk)))
        elif what == "datasets" and pk.isdigit():
            graph = lineage.for_dataset(get_object_or_404(Dataset, pk=int(pk)))
        else:
            return Response({"detail": "Not found."}, status=404)
        return Response(graph.as_dict())


class CompareView(APIView):
    """GET `?jobs=<uuid>&jobs=…&results=<id>&…`: what differs between them."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: dict})
    def get(self, request: Request) -> Response:
        params = request.query_params
        job_ids, result_ids, bad = compare.parse_ids(params.getlist("jobs"), params.getlist("results"))
        if bad:
            return Response({"detail": [f"{value} is not a job or result id." for value in bad]}, status=400)
        items = compare.pick(job_ids, result_ids)
        found = compare.comparison(items)
        return Response(
            {
                "items": [
                    {
                        "label": i.label,
                        "job": i.job.pk if i.job else None,
                        "result": i.result.pk if i.result else None,
                    }
                    for i in items
                ],
                "config_diff": [{"field": d.field, "values": d.shown} for d in found.config],
                "same_fields": found.same,
                "datasets": [{"field": d.field, "values": d.shown} for d in found.datasets],
                "scores": [
                    {"category": s.category, "values": s.values, "deltas": s.deltas} for s in found.scores
                ],
            }
        )


__all__ = ["CompareView", "DatasetViewSet", "LineageView", "SweepViewSet"]
