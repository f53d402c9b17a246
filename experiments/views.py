"""Pages: data sets, sweeps (form and table), lineage (job, result, data set) and compare.

Reading is open to every signed-in member; registering and submitting are checked in
`experiments.access`; writes go through `experiments.datasets` and `experiments.sweeps`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from evals.models import CATEGORIES, CATEGORY_LABELS, EvalResult
from experiments import access, compare, datasets, lineage, records, sweeps
from experiments.forms import DatasetForm, SweepForm
from experiments.models import BoardRecord, Dataset, Sweep
from portal.access import member_of, refuse_unoffered_subteam, require, require_member
from portal.http import HtmxHttpRequest
from scheduler import access as scheduler_access
from scheduler.models import Job
from scheduler.training_forms import KIND_LABELS, TrainingJobForm, TrainingStepForm

# --- data sets ------------------------------------------------------------------------------------------


@require_GET
def dataset_list(request: HtmxHttpRequest) -> HttpResponse:
    rows = Dataset.objects.select_related("subteam", "cluster", "derived_from").order_by(
        "name", "-created_at"
    )
    subteam = request.GET.get("subteam", "")
    if subteam:
        rows = rows.filter(subteam__slug=subteam)
    return render(
        request,
        "experiments/datasets.html",
        {"datasets": rows[:500], "can_register": access.may_register_datasets(request.user)},
    )


def dataset_create(request: HtmxHttpRequest) -> HttpResponse:
    require(access.may_register_datasets(request.user))
    if request.method != "POST":
        initial = {}
        derived = request.GET.get("derived_from", "")
        if derived.isdigit() and (parent := Dataset.objects.filter(pk=int(derived)).first()) is not None:
            initial = {"derived_from": parent.pk, "subteam": parent.subteam_id, "cluster": parent.cluster_id}
        form = DatasetForm(user=request.user, initial=initial)
        return render(request, "experiments/dataset_form.html", {"form": form})
    form = DatasetForm(request.POST, user=request.user)
    if not form.is_valid():
        refuse_unoffered_subteam(form, request.POST)
        return render(request, "experiments/dataset_form.html", {"form": form}, status=400)
    data = form.cleaned_data
    require(access.can_register_dataset(request.user, data["subteam"].pk))
    registration = datasets.Registration(
        subteam=data["subteam"],
        cluster=data["cluster"],
        name=data["name"],
        version=data["version"],
        path=data["path"],
        notes=data["notes"],
        derived_from=data["derived_from"],
    )
    try:
        dataset, new = datasets.register(require_member(request.user), registration)
    except ValidationError as error:
        for name, problems in error.message_dict.items():
            for problem in problems:
                form.add_error(name if name in form.fields else None, problem)
        return render(request, "experiments/dataset_form.html", {"form": form}, status=400)
    if new:
        messages.success(
            request,
            _("Registered %(ref)s; its rows, size and hash are being computed on the cluster.")
            % {"ref": dataset.ref},
        )
    else:
        messages.info(
            request,
            _("%(ref)s was registered before: its hash is being computed again and compared.")
            % {"ref": dataset.ref},
        )
    return redirect(dataset)


@require_GET
def dataset_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(
        Dataset.objects.select_related("subteam", "cluster", "derived_from", "created_by"), pk=pk
    )
    graph = lineage.for_dataset(dataset)
    derived = list(dataset.derived.order_by("name", "version")[:50])
    return render(
        request,
        "experiments/dataset.html",
        {
            "dataset": dataset,
            "lineage": graph,
            "columns": graph.layout(),
            "derived": derived,
            **_graph_context(graph),
        },
    )


# --- lineage --------------------------------------------------------------------------------------------


COLUMN_WIDTH, ROW_HEIGHT, NODE_WIDTH, NODE_HEIGHT = 190, 58, 170, 44


@dataclass
class Box:
    node: lineage.Node
    x: int
    y: int

    @property
    def tx(self) -> int:
        return self.x + 8

    @property
    def ty1(self) -> int:
        return self.y + 18

    @property
    def ty2(self) -> int:
        return self.y + 34


def _graph_context(graph: lineage.Lineage) -> dict[str, Any]:
    """Positions for the SVG: one column per kind, nodes stacked; edges from right edge to left edge."""
    columns = graph.layout()
    used = [i for i, column in enumerate(columns) if column]
    place = {kind_index: x for x, kind_index in enumerate(used)}
    boxes = []
    for node in graph.nodes.values():
        x = place[node.column] * COLUMN_WIDTH + 4
        y = node.row * ROW_HEIGHT + 4
        boxes.append(Box(node, x, y))
    where = {b.node.key: b for b in boxes}
    edges = []
    for source, target in sorted(graph.edges):
        a, b = where[source], where[target]
        x1, y1 = a.x + NODE_WIDTH, a.y + NODE_HEIGHT // 2
        x2, y2 = b.x, b.y + NODE_HEIGHT // 2
        mid = (x1 + x2) // 2
        edges.append({"d": f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}"})
    rows = max((len(c) for c in columns), default=1)
    return {
        "boxes": boxes,
        "edges": edges,
        "svg_width": max(1, len(used)) * COLUMN_WIDTH,
        "svg_height": rows * ROW_HEIGHT + 8,
        "node_width": NODE_WIDTH,
        "node_height": NODE_HEIGHT,
        "column_titles": [lineage.COLUMNS[i] for i in used],
    }


def _lineage_page(
    request: HtmxHttpRequest, graph: lineage.Lineage, title: str, focus: Any, **extra: Any
) -> HttpResponse:
    configs = [compare.config_of(job) for job in graph.jobs]
    return render(
        request,
        "experiments/lineage.html",
        {
            "title": title,
            "focus": focus,
            "lineage": graph,
            "configs": [
                (job, [(key, compare.show(value)) for key, value in config.items()])
                for job, config in zip(graph.jobs, configs, strict=True)
            ],
            **_graph_context(graph),
            **extra,
        },
    )


@require_GET
def lineage_job(request: HtmxHttpRequest, pk: uuid.UUID) -> HttpResponse:
    job = get_object_or_404(Job.objects.only("pk", "name", "kind"), pk=pk)
    if job.kind == Job.Kind.EVAL:
        result = EvalResult.objects.filter(job=job).first()
        if result is not None:
            return redirect("experiments:lineage-result", pk=result.pk)
    graph = lineage.for_job(job.pk)
    return _lineage_page(request, graph, _("Lineage of job %(name)s") % {"name": job.name}, job)


@require_GET
def lineage_result(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    result = get_object_or_404(EvalResult.objects.select_related("job", "subteam"), pk=pk)
    graph = lineage.for_result(result)
    return _lineage_page(
        request,
        graph,
        _("Lineage of %(model)s's score") % {"model": result.model_name},
        result,
        board_records=records.shown(result),
    )


# --- sweeps ---------------------------------------------------------------------------------------------


def _kind(request: HtmxHttpRequest) -> str:
    kind = request.POST.get("kind") or request.GET.get("kind") or "sft"
    return kind if kind in Job.Kind.kinds_that_train() else "sft"


def _sweep_forms(
    request: HtmxHttpRequest, kind: str, data: Any = None, initial: dict[str, Any] | None = None
) -> dict[str, Any]:
    initial = initial or {}
    return {
        "form": TrainingJobForm(data, user=request.user, kind=kind, initial=initial),
        "sweep_form": SweepForm(
            data,
            kind=kind,
            prefix="sweep",
            initial={k[6:]: v for k, v in initial.items() if k.startswith("sweep-")},
        ),
        "eval_form": TrainingStepForm(
            data,
            kind=Job.Kind.EVAL.value,
            prefix="eval",
            model_from_previous=True,
            initial={k[5:]: v for k, v in initial.items() if k.startswith("eval-")}
            or {"time_limit_minutes": 30},
        ),
    }


def _sweep_page(
    request: HtmxHttpRequest, kind: str, forms: dict[str, Any], status: int = 200, **extra: Any
) -> HttpResponse:
    context = {
        "kind": kind,
        "kind_label": KIND_LABELS[kind],
        "kinds": [(k, KIND_LABELS[k]) for k in Job.Kind.kinds_that_train()],
        "max_runs": sweeps.max_runs(),
        "templates": list(
            scheduler_access.usable_templates(request.user).filter(kind=kind).select_related("subteam")
        ),
        **forms,
        **extra,
    }
    return render(request, "experiments/sweep_form.html", context, status=status)


def sweep_create(request: HtmxHttpRequest) -> HttpResponse:
    """The training form with the fields to vary. GET `?template=N` starts from a template; a POST with
    `from_form` comes from a training form's "Sweep…" button (its fields, unchecked)."""
    require(access.may_submit_sweeps(request.user))
    kind = _kind(request)
    if request.method != "POST" or "from_form" in request.POST:
        initial: dict[str, Any] = {}
        pk = request.GET.get("template", "")
        if pk.isdigit():
            template = scheduler_access.get_template_to_use(request.user, int(pk), kind)
            initial = {**template.fields, "subteam": template.subteam_id}
            # The evaluation after each run starts from the subteam's evaluation template, if it has one.
            evaluation = (
                scheduler_access.usable_templates(request.user)
                .filter(kind=Job.Kind.EVAL, subteam_id=template.subteam_id)
                .first()
            )
            if evaluation is not None:
                initial |= {
                    f"eval-{k}": v
                    for k, v in evaluation.fields.items()
                    if k not in ("subteam", "cluster", "model")  # each evaluation reads its run's output
                }
        if request.method == "POST":
            initial = {
                k: (v if len(v) > 1 else v[0]) for k, v in request.POST.lists() if k != "csrfmiddlewaretoken"
            }
        return _sweep_page(request, kind, _sweep_forms(request, kind, initial=initial))
    forms = _sweep_forms(request, kind, data=request.POST)
    form, sweep_form, eval_form = forms["form"], forms["sweep_form"], forms["eval_form"]
    valid = form.is_valid() & sweep_form.is_valid()
    with_eval = valid and bool(sweep_form.cleaned_data.get("with_eval"))
    if with_eval:
        valid = eval_form.is_valid() and valid
    if not valid:
        refuse_unoffered_subteam(form, request.POST)
        return _sweep_page(request, kind, forms, status=400)
    require(access.can_submit_sweep(request.user, form.cleaned_data["subteam"].pk))
    me = require_member(request.user)
    base = form.job_spec()
    eval_spec = eval_form.spec(base.subteam, base.cluster, "eval") if with_eval else None
    try:
        plan = sweeps.plan(
            name=sweep_form.cleaned_data["sweep_name"],
            base=base,
            axes_raw=sweep_form.axes(),
            mode=sweep_form.cleaned_data["mode"],
            eval_spec=eval_spec,
        )
        if "preview" in request.POST:
            return _sweep_page(request, kind, forms, plan=plan)
        sweep = sweeps.submit(me, plan)
    except ValidationError as error:
        problems = error.message_dict if hasattr(error, "error_dict") else {"": error.messages}
        for name, said in problems.items():
            target = sweep_form if name in ("axes", "mode", "runs", "fit") or name == "name" else form
            for message in said:
                if name == "name":
                    sweep_form.add_error("sweep_name", message)
                elif target is form and name in form.fields:
                    form.add_error(name, message)
                else:
                    sweep_form.add_error(None, message)
        return _sweep_page(request, kind, forms, status=400)
    messages.success(
        request, _("Sweep %(name)s submitted: %(n)d runs.") % {"name": sweep.name, "n": len(plan.runs)}
    )
    return redirect(sweep)


@require_GET
def sweep_list(request: HtmxHttpRequest) -> HttpResponse:
    rows = Sweep.objects.select_related("owner", "subteam").order_by("-created_at")[:200]
    news = list(
        BoardRecord.objects.select_related("result__subteam", "result__job", "goal").order_by("-at")[:5]
    )
    me = member_of(request.user)
    return render(
        request,
        "experiments/sweeps.html",
        {
            "sweeps": rows,
            "can_submit": access.may_submit_sweeps(request.user),
            "news": news,
            "mine": {
                r.pk for r in news if me is not None and r.result.job and r.result.job.owner_id == me.pk
            },
        },
    )


@require_GET
def sweep_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    sweep = get_object_or_404(Sweep.objects.select_related("owner", "subteam", "cluster"), pk=pk)
    fields = sweep.fields
    sort = request.GET.get("sort", "-score" if sweep.with_eval else "number")
    if sort.lstrip("-") not in (*fields, "score", "loss", "number"):
        sort = "number"
    rows = sweeps.sort_rows(sweeps.table(sweep), sort, fields)
    used = compare.kind_fields(sweep.kind)
    shared = {
        k: v
        for k, v in (sweep.base.get("training") or {}).items()
        if k not in fields and k not in compare.IGNORED_FIELDS and k in used
    }
    return render(
        request,
        "experiments/sweep.html",
        {
            "sweep": sweep,
            "rows": rows,
            "fields": fields,
            "sort": sort,
            "shared": sorted((k, compare.show(v)) for k, v in shared.items() if v not in ("", None, [])),
            "job_ids": ",".join(str(r.run.job_id) for r in rows),
            "best": next((r for r in rows if r.best), None),
        },
    )


# --- compare --------------------------------------------------------------------------------------------


def _suggestions(items: list[compare.Compared]) -> list[Job]:
    """With fewer than two picked: the latest runs like the one picked (its subteam, its kind), to add."""
    if len(items) != 1 or items[0].job is None:
        return []
    job = items[0].job
    return list(
        Job.objects.filter(subteam_id=job.subteam_id, kind=job.kind, state=Job.State.COMPLETED)
        .exclude(pk=job.pk)
        .only("pk", "name", "ended_at")
        .order_by("-ended_at")[:10]
    )


@require_GET
def compare_view(request: HtmxHttpRequest) -> HttpResponse:
    job_ids, result_ids, _bad = compare.parse_ids(request.GET.getlist("jobs"), request.GET.getlist("results"))
    items = compare.pick(job_ids, result_ids)
    found = compare.comparison(items)
    labels = {"average": _("Average"), **{c: str(CATEGORY_LABELS[c]) for c in CATEGORIES}}
    return render(
        request,
        "experiments/compare.html",
        {
            "items": items,
            "diff": found.config if len(items) > 1 else [],
            "same_count": found.same if len(items) > 1 else 0,
            "data_diff": found.datasets,
            "scores": [
                (labels[s.category], list(zip(s.values, s.deltas, strict=True))) for s in found.scores
            ],
            "curve_jobs": ",".join(str(i.job.pk) for i in items if i.job is not None),
            "too_few": len(items) < 2,
            "suggestions": _suggestions(items),
            "query": request.GET.urlencode(),
        },
    )
