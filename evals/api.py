"""/api/v1/eval-results/: list and read results; import FastChat judgment files; add baselines.

Read: any signed-in user (anonymous: 401). Import: members for their own subteams, admins for any
subteam or the whole project (`evals.access.can_import_eval`). Baselines: a subteam's leads, admins
(`evals.access.can_add_baseline`). Writes are `evals.services` calls.
"""

from __future__ import annotations

from typing import Any

import django_filters as df
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from evals import access, services
from evals.forms import MAX_UPLOAD_BYTES
from evals.models import CATEGORIES, DEFAULT_BENCHMARK, EvalJudgment, EvalResult
from portal.access import member_of
from portal.api.errors import service_errors
from portal.api.filters import subteam_filter
from portal.api.permissions import require
from portal.api.serializers import SubteamSlugField, UsernameField

# --- serializers ------------------------------------------------------------------------------------------


class EvalJudgmentSerializer(serializers.ModelSerializer[EvalJudgment]):
    class Meta:
        model = EvalJudgment
        fields = ["question_id", "category", "turn", "score", "question", "judgment"]
        read_only_fields = fields


class EvalResultSerializer(serializers.ModelSerializer[EvalResult]):
    subteam = SubteamSlugField(read_only=True, allow_null=True)
    created_by = UsernameField(read_only=True, allow_null=True)
    web_url = serializers.URLField(source="get_absolute_url", read_only=True)

    class Meta:
        model = EvalResult
        fields = [
            "id",
            "model_name",
            "subteam",
            "benchmark",
            "question_set",
            "question_set_sha256",
            "average",
            *CATEGORIES,
            "turn1_average",
            "turn2_average",
            "judge_model",
            "generation",
            "judgment_count",
            "source",
            "is_baseline",
            "notes",
            "job",
            "trained_by_job",
            "created_by",
            "created_at",
            "web_url",
        ]
        read_only_fields = fields


class EvalResultDetailSerializer(EvalResultSerializer):
    judgments = EvalJudgmentSerializer(many=True, read_only=True)

    class Meta(EvalResultSerializer.Meta):
        fields = [*EvalResultSerializer.Meta.fields, "judgments"]
        read_only_fields = fields


def _content(upload: Any, text: str | None, name: str) -> bytes | None:
    if upload is not None:
        if upload.size > MAX_UPLOAD_BYTES:
            raise serializers.ValidationError({name: ["The file is larger than 50 MB."]})
        data: bytes = upload.read()
        return data
    return text.encode("utf-8") if text is not None else None


class ImportSerializer(serializers.Serializer[dict[str, Any]]):
    """Either the files (multipart: `judgments`, `questions`) or their text (`judgments_jsonl`,
    `questions_jsonl`, e.g. in JSON)."""

    judgments = serializers.FileField(required=False, help_text="model_judgment/<judge>_single.jsonl")
    questions = serializers.FileField(required=False, help_text="question.jsonl")
    judgments_jsonl = serializers.CharField(required=False, trim_whitespace=False)
    questions_jsonl = serializers.CharField(required=False, trim_whitespace=False)
    subteam = SubteamSlugField(required=False, allow_null=True, default=None)
    model_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    judge_model = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    question_set = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("judgments", "questions"):
            data = _content(attrs.pop(name, None), attrs.pop(f"{name}_jsonl", None), name)
            if data is None:
                raise serializers.ValidationError(
                    {name: [f"Send the file as `{name}` (multipart) or its text as `{name}_jsonl`."]}
                )
            attrs[name] = data
        return attrs


class BaselineSerializer(serializers.Serializer[dict[str, Any]]):
    model_name = serializers.CharField(max_length=200)
    average = serializers.FloatField(min_value=0, max_value=10)
    categories = serializers.DictField(
        child=serializers.FloatField(min_value=0, max_value=10, allow_null=True),
        required=False,
        default=dict,
        help_text=f"Category -> score; categories: {', '.join(CATEGORIES)}.",
    )
    subteam = SubteamSlugField(required=False, allow_null=True, default=None)
    benchmark = serializers.CharField(required=False, default=DEFAULT_BENCHMARK, max_length=50)
    judge_model = serializers.CharField(required=False, allow_blank=True, default="", max_length=100)
    notes = serializers.CharField(required=False, allow_blank=True, default="")


# --- views ------------------------------------------------------------------------------------------------


class EvalResultFilter(df.FilterSet):
    subteam = subteam_filter(project_wide=True)
    model = df.CharFilter(
        field_name="model_name", lookup_expr="icontains", help_text="Part of the model name."
    )

    class Meta:
        model = EvalResult
        fields = ["subteam", "benchmark", "model", "is_baseline", "source"]


@extend_schema_view(
    list=extend_schema(
        summary="List evaluation results",
        description="Newest first. Filter with `?subteam=<slug>|none&benchmark=&model=&is_baseline=&source=`.",
    ),
    retrieve=extend_schema(summary="One result, with its per-question judgments"),
)
@extend_schema(tags=["evals"])
class EvalResultViewSet(viewsets.ReadOnlyModelViewSet[EvalResult]):
    """Scores of models on a benchmark (Japanese MT-Bench: `jmt_bench`): the average, the 8 categories
    and the per-turn averages, from eval jobs, imported judgment files or entered by hand (baselines)."""

    serializer_class = EvalResultSerializer
    filterset_class = EvalResultFilter
    queryset = EvalResult.objects.select_related("subteam", "created_by__user")

    def get_queryset(self) -> QuerySet[EvalResult]:
        results = super().get_queryset()
        if self.action == "retrieve":
            results = results.prefetch_related("judgments")
        return results

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "retrieve":
            return EvalResultDetailSerializer
        if self.action == "import_judgments":
            return ImportSerializer
        if self.action == "baselines":
            return BaselineSerializer
        return EvalResultSerializer

    def _created(self, results: list[EvalResult]) -> list[dict[str, Any]]:
        stored = self.get_queryset().filter(pk__in=[r.pk for r in results]).order_by("pk")
        return list(EvalResultSerializer(stored, many=True, context=self.get_serializer_context()).data)

    @extend_schema(
        summary="Import FastChat judgments",
        description=(
            "A single-answer judgment file and its question file, as multipart files (`judgments`, "
            "`questions`) or as text (`judgments_jsonl`, `questions_jsonl`). One result per model in "
            "the file (or only `model_name`'s). Members of the subteam and admins; project-wide "
            "(no `subteam`): admins. Nothing is recorded when a file is bad; the errors name the lines."
        ),
        request={"multipart/form-data": ImportSerializer, "application/json": ImportSerializer},
        responses={201: EvalResultSerializer(many=True)},
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import",
        parser_classes=[MultiPartParser, FormParser, JSONParser],
        filter_backends=[],
    )
    def import_judgments(self, request: Request) -> Response:
        serializer = ImportSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subteam = data["subteam"]
        require(access.can_import_eval(request.user, subteam.pk if subteam else None))
        with service_errors():
            results = services.import_judgments(
                member_of(request.user),
                judgments_jsonl=data["judgments"],
                questions_jsonl=data["questions"],
                subteam=subteam,
                model_name=data["model_name"] or None,
                judge_model=data["judge_model"] or None,
                question_set=data["question_set"],
            )
        return Response(self._created(results), status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Add a baseline",
        description=(
            "A reference model's scores entered by hand. A subteam's leads for it; admins for any "
            "subteam and the whole project (no `subteam`). Baselines never change a goal."
        ),
        request=BaselineSerializer,
        responses={201: EvalResultSerializer},
    )
    @action(detail=False, methods=["post"], filter_backends=[])
    def baselines(self, request: Request) -> Response:
        serializer = BaselineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        subteam = data["subteam"]
        require(access.can_add_baseline(request.user, subteam.pk if subteam else None))
        with service_errors():
            result = services.add_baseline(
                member_of(request.user),
                model_name=data["model_name"],
                average=data["average"],
                categories=data["categories"],
                subteam=subteam,
                notes=data["notes"],
                benchmark=data["benchmark"],
                judge_model=data["judge_model"],
            )
        return Response(self._created([result])[0], status=status.HTTP_201_CREATED)
