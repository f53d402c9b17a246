"""Leaderboards (project and per subteam), a result's page with its radar chart and per-question scores,
the import form and the baseline form.

Every write is an `evals.services` call and every permission an `evals.access` predicate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from evals import access, services
from evals.charts import radar
from evals.forms import BaselineForm, ImportForm
from evals.models import BENCHMARK_LABELS, CATEGORIES, CATEGORY_LABELS, DEFAULT_BENCHMARK, EvalResult
from portal import hooks
from portal.access import member_of, refuse_unoffered_subteam, require
from portal.http import HtmxHttpRequest
from portal.models import Subteam

SCORE_COLUMNS = ("average", *CATEGORIES)
TEXT_COLUMNS = ("subteam", "judge_model", "source")
SORTABLE = ("model_name", *SCORE_COLUMNS, *TEXT_COLUMNS, "created_at")
ORDER_FIELDS = {"subteam": "subteam__name"}  # ?sort= names that are not field names
DEFAULT_SORT = "-average"


def result_rows() -> QuerySet[EvalResult]:
    return EvalResult.objects.select_related("subteam", "job")


def board_rows() -> QuerySet[EvalResult]:
    """The leaderboard's rows: with the training job, whose parameters the groups read (not its script)."""
    return (
        result_rows()
        .select_related("trained_by_job")
        .defer("job__script", "job__config_yaml", "trained_by_job__script", "trained_by_job__config_yaml")
    )


# --- leaderboard ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    label: str
    is_score: bool
    sorted_as: str  # "asc", "desc" or ""
    next_sort: str  # the ?sort= value of a click on the header


def _sort_key(raw: str) -> str:
    return raw if raw.lstrip("-") in SORTABLE else DEFAULT_SORT


def _columns(sort: str) -> list[Column]:
    labels: dict[str, Any] = {
        "model_name": _("Model"),
        "average": _("Average"),
        **CATEGORY_LABELS,
        "subteam": _("Subteam"),
        "judge_model": _("Judge"),
        "source": _("Source"),
    }
    columns = []
    for name in ("model_name", *SCORE_COLUMNS, *TEXT_COLUMNS):
        current = sort.lstrip("-") == name
        descending = sort.startswith("-")
        sorted_as = ("desc" if descending else "asc") if current else ""
        if current:
            next_sort = name if descending else f"-{name}"
        else:
            next_sort = f"-{name}" if name in SCORE_COLUMNS else name  # scores: best first
        columns.append(Column(name, str(labels[name]), name in SCORE_COLUMNS, sorted_as, next_sort))
    return columns


def _ordered(results: QuerySet[EvalResult], sort: str) -> QuerySet[EvalResult]:
    name = sort.lstrip("-")
    field = F(ORDER_FIELDS.get(name, name))
    order = field.desc(nulls_last=True) if sort.startswith("-") else field.asc(nulls_last=True)
    return results.order_by(order, "model_name", "pk")


def _best(rows: list[EvalResult]) -> dict[str, float]:
    """Column -> the best value in it (over every row shown, baselines included)."""
    best: dict[str, float] = {}
    for column in SCORE_COLUMNS:
        values = [v for v in (getattr(r, column) for r in rows) if v is not None]
        if values:
            best[column] = max(values)
    return best


def _cells(result: EvalResult, best: dict[str, float]) -> list[tuple[float | None, bool]]:
    """(value, whether it is the column's best) for each score column."""
    return [(getattr(result, c), c in best and getattr(result, c) == best[c]) for c in SCORE_COLUMNS]


# --- groups of rows (settings.EVAL_RESULT_GROUPS) -------------------------------------------------------


class ResultGroup(Protocol):
    """What the leaderboard reads of a group (the hook's `experiments.board.Group`, or `ModelGroup`)."""

    @property
    def key(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def url(self) -> str | None: ...
    @property
    def kind(self) -> str: ...


@dataclasses.dataclass(frozen=True)
class ModelGroup:
    key: str
    label: str
    url: str | None = None
    kind: str = "model"


def by_model_name(results: Sequence[EvalResult]) -> dict[int, ResultGroup]:
    """The groups without a hook: the results of one model name together, each baseline alone."""
    return {
        r.pk: ModelGroup(f"baseline:{r.pk}", r.model_name, kind="baseline")
        if r.is_baseline
        else ModelGroup(f"model:{r.model_name}", r.model_name)
        for r in results
    }


def result_groups(results: list[EvalResult]) -> Mapping[int, ResultGroup]:
    """Result pk -> its group, by the `EVAL_RESULT_GROUPS` setting's function (the experiments app knows
    sweeps and base models); by model name when none is set."""
    grouper = hooks.setting_function("EVAL_RESULT_GROUPS")
    found: Mapping[int, ResultGroup] = grouper(results) if grouper is not None else by_model_name(results)
    return found


@dataclasses.dataclass(frozen=True)
class Row:
    result: EvalResult
    cells: list[tuple[float | None, bool]]
    folded: bool  # not its group's first: shown once the group's "N more" is opened

    @property
    def css(self) -> str:
        return " ".join(
            c for c in ("baseline" if self.result.is_baseline else "", "more" if self.folded else "") if c
        )


@dataclasses.dataclass(frozen=True)
class GroupRows:
    group: ResultGroup
    rows: list[Row]  # the first is the group's best by the board's order

    @property
    def more(self) -> int:
        return len(self.rows) - 1


def _grouped(rows: list[EvalResult], best: dict[str, float]) -> list[GroupRows]:
    """The rows in groups: each group where its first row (the best by the board's sort) stands, its
    other rows after it, in the same order."""
    found = result_groups(rows)
    groups: dict[str, tuple[ResultGroup, list[EvalResult]]] = {}
    for result in rows:
        group = found.get(result.pk) or ModelGroup(f"result:{result.pk}", result.model_name)
        groups.setdefault(group.key, (group, []))[1].append(result)
    return [
        GroupRows(group, [Row(r, _cells(r, best), folded=i > 0) for i, r in enumerate(members)])
        for group, members in groups.values()
    ]


@require_GET
def leaderboard(request: HtmxHttpRequest, slug: str | None = None) -> HttpResponse:
    """The project's board (every result) or a subteam's (its results and the project's baselines)."""
    subteam = get_object_or_404(Subteam, slug=slug) if slug is not None else None
    benchmark = request.GET.get("benchmark", "").strip() or DEFAULT_BENCHMARK
    sort = _sort_key(request.GET.get("sort", ""))
    results = services.on_board(board_rows(), benchmark, subteam.pk if subteam is not None else None)
    rows = list(_ordered(results, sort))
    context: dict[str, Any] = {
        "subteam": subteam,
        "benchmark": benchmark,
        "benchmark_label": BENCHMARK_LABELS.get(benchmark, benchmark),
        "sort": sort,
        "columns": _columns(sort),
        "groups": _grouped(rows, _best(rows)),
        "base_url": request.path,
    }
    if request.htmx:
        return render(request, "evals/leaderboard.html#board", context)
    benchmarks = set(EvalResult.objects.values_list("benchmark", flat=True).distinct()) | {DEFAULT_BENCHMARK}
    context.update(
        subteams=Subteam.objects.all(),
        benchmarks=sorted(benchmarks),
        can_import=access.may_import_evals(request.user),
        can_add_baseline=access.may_add_baselines(request.user),
    )
    return render(request, "evals/leaderboard.html", context)


# --- one result -----------------------------------------------------------------------------------------


@dataclasses.dataclass
class QuestionRow:
    question_id: str
    category: str
    question: str
    turns: dict[int, Any] = dataclasses.field(default_factory=dict)

    @property
    def category_label(self) -> str:
        return str(CATEGORY_LABELS.get(self.category, self.category))

    @property
    def turn1(self) -> Any:
        return self.turns.get(1)

    @property
    def turn2(self) -> Any:
        return self.turns.get(2)


def _question_rows(result: EvalResult) -> list[QuestionRow]:
    rows: dict[str, QuestionRow] = {}
    for j in result.judgments.all():
        row = rows.setdefault(
            j.question_id, QuestionRow(j.question_id, j.category, j.question if j.turn == 1 else "")
        )
        if j.turn == 1 and j.question:
            row.question = j.question
        row.turns[j.turn] = j
    return list(rows.values())


def _score_labels() -> list[tuple[str, str]]:
    return [("average", _("Average")), *((c, str(CATEGORY_LABELS[c])) for c in CATEGORIES)]


def _score_row(
    label: str, name: str, result: EvalResult, compare: EvalResult | None
) -> tuple[str, float | None, float | None, float | None]:
    value = getattr(result, name)
    other = getattr(compare, name) if compare is not None else None
    diff = round(value - other, 4) if value is not None and other is not None else None
    return label, value, other, diff


def _comparable(result: EvalResult, chosen: str) -> tuple[list[EvalResult], EvalResult | None]:
    """The other results of the benchmark (baselines first) and the one to compare with: `chosen` (a
    pk), none for "none", else the first baseline."""
    others = list(
        result_rows()
        .filter(benchmark=result.benchmark)
        .exclude(pk=result.pk)
        .order_by("-is_baseline", F("average").desc(nulls_last=True), "model_name")
    )
    compare = next((o for o in others if str(o.pk) == chosen), None)
    if compare is None and chosen != "none":
        compare = next((o for o in others if o.is_baseline), None)
    return others, compare


@require_GET
def result_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A result's scores, a radar chart against a chosen result (a baseline by default) and, when the
    judgments were kept, the score of every question and turn."""
    result = get_object_or_404(
        EvalResult.objects.select_related(
            "subteam", "job", "trained_by_job", "created_by__user"
        ).prefetch_related("judgments"),
        pk=pk,
    )
    others, compare = _comparable(result, request.GET.get("compare", ""))
    series = [(result.model_name, result.categories, "model")]
    if compare is not None:
        series.append((compare.model_name, compare.categories, "baseline"))
    context = {
        "result": result,
        "others": others,
        "compare": compare,
        "chart": radar(series),
        "scores": [_score_row(label, name, result, compare) for name, label in _score_labels()],
        "questions": _question_rows(result),
    }
    if request.htmx:
        return render(request, "evals/result.html#comparison", context)
    return render(request, "evals/result.html", context)


# --- import and baselines -------------------------------------------------------------------------------


def _add_service_errors(form: ImportForm | BaselineForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error.messages)


def _import(request: HtmxHttpRequest, form: ImportForm) -> list[EvalResult] | None:
    """Import the posted files; None, with the problems on the form, when nothing was recorded."""
    if not form.is_valid():
        refuse_unoffered_subteam(form, request.POST)
        return None
    data = form.cleaned_data
    require(access.can_import_eval(request.user, data["subteam"].pk if data["subteam"] else None))
    try:
        return services.import_judgments(
            member_of(request.user),
            judgments_jsonl=data["judgments"],
            questions_jsonl=data["questions"],
            subteam=data["subteam"],
            model_name=data["model_name"] or None,
            judge_model=data["judge_model"] or None,
            question_set=data["question_set"],
        )
    except ValidationError as error:
        _add_service_errors(form, error)
        return None


def import_results(request: HtmxHttpRequest) -> HttpResponse:
    require(access.may_import_evals(request.user))
    if request.method != "POST":
        return render(request, "evals/import.html", {"form": ImportForm(user=request.user)})
    form = ImportForm(request.POST, request.FILES, user=request.user)
    results = _import(request, form)
    if results is None:
        return render(request, "evals/import.html", {"form": form})
    messages.success(
        request,
        _("Imported %(n)d results: %(models)s.")
        % {"n": len(results), "models": ", ".join(r.model_name for r in results)},
    )
    return redirect(results[0] if len(results) == 1 else "evals:leaderboard")


def _add(request: HtmxHttpRequest, form: BaselineForm) -> EvalResult | None:
    """Record the posted baseline; None, with the problems on the form, when it is not."""
    if not form.is_valid():
        refuse_unoffered_subteam(form, request.POST)
        return None
    data = form.cleaned_data
    require(access.can_add_baseline(request.user, data["subteam"].pk if data["subteam"] else None))
    try:
        return services.add_baseline(
            member_of(request.user),
            model_name=data["model_name"],
            average=data["average"],
            categories=form.category_values,
            subteam=data["subteam"],
            notes=data["notes"],
            judge_model=data["judge_model"],
        )
    except ValidationError as error:
        _add_service_errors(form, error)
        return None


def add_baseline(request: HtmxHttpRequest) -> HttpResponse:
    require(access.may_add_baselines(request.user))
    if request.method != "POST":
        form = BaselineForm(user=request.user)
        return render(request, "evals/baseline_form.html", {"form": form, "categories": CATEGORIES})
    form = BaselineForm(request.POST, user=request.user)
    result = _add(request, form)
    if result is None:
        return render(request, "evals/baseline_form.html", {"form": form, "categories": CATEGORIES})
    messages.success(request, _("Baseline added."))
    return redirect(result)
