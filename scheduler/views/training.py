"""Training jobs (pretrain, SFT, DPO, eval), pipelines of them, and the subteams' templates.

Same rules as the custom job form (views.jobs): permissions from `scheduler.access`, writes through
`scheduler.services`; the preview renders run.yaml and the sbatch script on unsaved jobs.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from portal.access import member_of, require, require_member
from portal.http import HtmxHttpRequest
from portal.models import Subteam
from scheduler import access, pending, services
from scheduler.models import Cluster, Job, JobTemplate, Pipeline
from scheduler.training_forms import KIND_LABELS, PipelineForm, TrainingJobForm
from scheduler.views.jobs import _initial, submitter_of

TEMPLATE_FIELDS_SKIP = {"csrfmiddlewaretoken", "template_name", "template_description", "save_template"}


def _kind(request: HtmxHttpRequest) -> str:
    kind = request.POST.get("kind") or request.GET.get("kind") or "sft"
    return kind if kind in Job.Kind.training_kinds() else "sft"


def _templates(request: HtmxHttpRequest, kind: str) -> list[JobTemplate]:
    """Templates of the user's subteams (admins: all) for this kind."""
    return list(access.usable_templates(request.user).filter(kind=kind).select_related("subteam"))


def _template_initial(request: HtmxHttpRequest, kind: str) -> tuple[dict[str, Any], JobTemplate | None]:
    pk = request.GET.get("template", "")
    if not pk.isdigit():
        return {}, None
    template = access.get_template_to_use(request.user, int(pk), kind)
    initial = dict(template.fields)
    initial["subteam"] = template.subteam_id
    return initial, template


def _checkboxes(form: Any) -> list[str]:
    """The names of a form's checkboxes (a pipeline form's steps' too), as they are posted."""
    names = [form.add_prefix(n) for n, f in form.fields.items() if isinstance(f, forms.BooleanField)]
    for step in getattr(form, "steps", {}).values():
        names += _checkboxes(step)
    return names


def _save_template(request: HtmxHttpRequest, kind: str, subteam_id: str, form: Any) -> JobTemplate | None:
    """Save the posted fields as the subteam's template (Save as template button); None when refused.
    An unticked checkbox is kept as "" (a browser posts nothing for it), so it stays unticked."""
    subteam = Subteam.objects.filter(pk=int(subteam_id)).first() if subteam_id.isdigit() else None
    require(subteam is not None and access.can_save_job_template(request.user, subteam.pk))
    assert subteam is not None
    fields = {k: v for k, v in _posted(request.POST).items() if k not in TEMPLATE_FIELDS_SKIP}
    for name in _checkboxes(form):
        fields.setdefault(name, "")
    try:
        template = services.save_template(
            require_member(request.user),
            subteam=subteam,
            name=request.POST.get("template_name", ""),
            kind=kind,
            fields=fields,
            description=request.POST.get("template_description", ""),
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return None
    messages.success(
        request,
        _("Saved as the template “%(name)s” of %(subteam)s.")
        % {"name": template.name, "subteam": subteam.name},
    )
    return template


def _posted(data: QueryDict) -> dict[str, Any]:
    """The form's fields as a template keeps them (a checkbox: "on" when ticked)."""
    return {key: (values if len(values := data.getlist(key)) > 1 else data.get(key)) for key in data}


def _context(request: HtmxHttpRequest, form: Any, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "form": form,
        "kind": kind,
        "kind_label": KIND_LABELS[kind],
        "kinds": [(k, KIND_LABELS[k]) for k in Job.Kind.training_kinds()],
        "templates": _templates(request, "pipeline" if kind == "pipeline" else kind),
        "no_cluster": not Cluster.objects.filter(is_active=True).exists(),
        **extra,
    }


def _training_page(request: HtmxHttpRequest, form: TrainingJobForm, kind: str, **extra: Any) -> HttpResponse:
    return render(request, "scheduler/jobs/training_form.html", _context(request, form, kind, **extra))


def _blank_training_form(request: HtmxHttpRequest, kind: str) -> HttpResponse:
    """The form on a GET, filled from `?template=` when one is named."""
    require(access.may_submit_jobs(request.user))
    initial, template = _template_initial(request, kind)
    form = TrainingJobForm(user=request.user, kind=kind, initial={**_initial(request), **initial})
    return _training_page(request, form, kind, **({"template": template} if template is not None else {}))


def _submit_training(request: HtmxHttpRequest, form: TrainingJobForm) -> Job | None:
    me = submitter_of(request, form)
    spec = form.check() if me is not None else None
    if me is None or spec is None:
        return None
    try:
        return services.submit_job(me, spec)
    except ValidationError as error:
        form.put_errors(error)
        return None


def training_create(request: HtmxHttpRequest) -> HttpResponse:
    kind = _kind(request)
    if request.method != "POST":
        return _blank_training_form(request, kind)
    form = TrainingJobForm(request.POST, user=request.user, kind=kind)
    if "save_template" in request.POST:
        template = _save_template(request, kind, request.POST.get("subteam", ""), form)
        if template is not None:
            return redirect(f"{request.path}?kind={kind}&template={template.pk}")
        return _training_page(request, form, kind)
    job = _submit_training(request, form)
    if job is None:
        return _training_page(request, form, kind)
    messages.success(request, _("Job submitted."))
    return redirect(job)


@require_POST
def training_preview(request: HtmxHttpRequest) -> HttpResponse:
    """run.yaml and the sbatch script the form would submit (nothing is recorded)."""
    kind = _kind(request)
    form = TrainingJobForm(request.POST, user=request.user, kind=kind)
    preview: dict[str, Any] | None = None
    me = submitter_of(request, form)
    spec = form.check() if me is not None else None
    if me is not None and spec is not None:
        job = services.build_job(me, spec)
        preview = {
            "job": job,
            "script": job.script,
            "config": job.config_yaml,
            "estimate": pending.estimate_start(job),
        }
    context = _context(request, form, kind, preview=preview, previewed=True)
    if request.htmx:
        return render(request, "scheduler/jobs/training_form.html#preview", context)
    return render(request, "scheduler/jobs/training_form.html", context)


# --- pipelines ------------------------------------------------------------------------------------------


def _pipeline_page(request: HtmxHttpRequest, form: PipelineForm) -> HttpResponse:
    context = {
        "form": form,
        "kinds": [(k, KIND_LABELS[k]) for k in Job.Kind.training_kinds()],
        "templates": _templates(request, "pipeline"),
        "no_cluster": not Cluster.objects.filter(is_active=True).exists(),
    }
    return render(request, "scheduler/pipelines/form.html", context)


def _submit_pipeline(request: HtmxHttpRequest, form: PipelineForm) -> Pipeline | None:
    me = submitter_of(request, form)
    if me is None:
        return None
    try:
        return services.submit_pipeline(me, form.cleaned_data["name"], form.specs())
    except ValidationError as error:
        form.put_errors(error)
        return None


def pipeline_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method != "POST":
        require(access.may_submit_jobs(request.user))
        initial, _template = _template_initial(request, "pipeline")
        return _pipeline_page(
            request, PipelineForm(user=request.user, initial={**_initial(request), **initial})
        )
    form = PipelineForm(request.POST, user=request.user)
    if "save_template" in request.POST:
        template = _save_template(request, "pipeline", request.POST.get("subteam", ""), form)
        if template is not None:
            return redirect(f"{request.path}?template={template.pk}")
        return _pipeline_page(request, form)
    pipeline = _submit_pipeline(request, form)
    if pipeline is None:
        return _pipeline_page(request, form)
    messages.success(request, _("Pipeline submitted: each step runs only if the one before succeeds."))
    return redirect(pipeline)


def _pipelines() -> Any:
    return Pipeline.objects.select_related("subteam", "owner__user", "cluster").prefetch_related(
        Prefetch("jobs", queryset=Job.objects.select_related("subteam", "cluster", "eval_result"))
    )


@require_GET
def pipeline_list(request: HtmxHttpRequest) -> HttpResponse:
    pipelines = list(_pipelines()[:50])
    rows = [{"pipeline": p, "steps": p.steps(), "progress": Pipeline.progress(p.steps())} for p in pipelines]
    return render(request, "scheduler/pipelines/list.html", {"rows": rows})


@require_GET
def pipeline_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pipeline = get_object_or_404(_pipelines(), pk=pk)
    steps = pipeline.steps()
    state, at = Pipeline.progress(steps)
    context = {
        "pipeline": pipeline,
        "steps": steps,
        "state": state,
        "at": at,
        "live": state in ("running", "waiting"),
    }
    if request.htmx:
        return render(request, "scheduler/pipelines/detail.html#steps", context)
    return render(request, "scheduler/pipelines/detail.html", context)


@require_POST
def template_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    template = access.get_template_to_delete(request.user, pk)
    kind = template.kind
    services.delete_template(member_of(request.user), template)
    messages.success(request, _("Template deleted."))
    if kind == "pipeline":
        return redirect("scheduler:pipeline-create")
    return redirect(f"/jobs/train/?kind={kind}")
