"""Evaluation results in the admin: read, annotate and delete (new results enter through the services)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from evals.models import EvalJudgment, EvalResult
from portal.admin import ManagementOnly, ReadOnlyInline, admin_site


class EvalJudgmentInline(ReadOnlyInline, admin.TabularInline[EvalJudgment, EvalResult]):
    model = EvalJudgment
    fields = readonly_fields = ("question_id", "category", "turn", "score", "judgment")


@admin.register(EvalResult, site=admin_site)
class EvalResultAdmin(ManagementOnly, admin.ModelAdmin[EvalResult]):
    list_display = [
        "model_name",
        "benchmark",
        "average",
        "subteam",
        "is_baseline",
        "source",
        "judge_model",
        "created_at",
    ]
    list_filter = ["benchmark", "is_baseline", "source", "subteam"]
    list_select_related = ["subteam"]
    search_fields = ["model_name", "judge_model", "notes"]
    date_hierarchy = "created_at"
    inlines = [EvalJudgmentInline]

    def get_readonly_fields(self, request: HttpRequest, obj: EvalResult | None = None) -> list[str]:
        # Scores change only through evals.services, which also moves the goals; notes are free text.
        return [field.name for field in EvalResult._meta.fields if field.name != "notes"]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # results come from jobs, imports and the baseline form
