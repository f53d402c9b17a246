"""Training jobs (pretrain, SFT, DPO, eval), pipelines of them, and the subteams' templates.

Same rules as the custom job form (views.jobs): permissions from `portal.access`, writes through
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

from portal import access
from portal.http import HtmxHttpRequest
from scheduler import services
from scheduler.models import Cluster, Job, JobTemplate, Pipeline
from scheduler.training_forms import KIND_LABELS, TRAINING_KINDS, PipelineForm, TrainingJobForm
from scheduler.views.jobs import _decorate, _initial, _submitter

TEMPLATE_FIELDS_SKIP = {"csrfmiddlewaretoken", "template_name", "template_description", "save_template"}


def _kind(request: HtmxHttpRequest) -> str:
    kind = request.POST.get("kind") or request.GET.get("kind") or "sft"
    return kind if kind in TRAINING_KINDS else "sft"


def _templates(request: HtmxHttpRequest, kind: str) -> list[JobTemplate]:
    """Templates of the user's subteams (admins: all) for this kind."""
    templates = JobTemplate.objects.filter(kind=kind).select_related("subteam")
    if not access.is_admin(request.user):
        templates = templates.filter(subteam_id__in=access.subteam_ids(request.user))
    return list(templates)


def _template_initial(request: HtmxHttpRequest, kind: str) -> tuple[dict[str, Any], JobTemplate | None]:
    pk = request.GET.get("template", "")
    if not pk.isdigit():
        return {}, None
    template = get_object_or_404(JobTemplate, pk=int(pk), kind=kind)
    access.require(access.is_admin(request.user) or template.subteam_id in access.subteam_ids(request.user))
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
    from portal.models import Subteam

    subteam = Subteam.objects.filter(pk=int(subteam_id)).first() if subteam_id.isdigit() else None
    access.require(subteam is not None and access.can_save_job_template(request.user, subteam.pk))
    assert subteam is not None
    fields = {k: v for k, v in _posted(request.POST).items() if k not in TEMPLATE_FIELDS_SKIP}
    for name in _checkboxes(form):
        fields.setdefault(name, "")
    try:
        template = services.save_template(
            _submitter(request),
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
    return {key: data.get(key) for key in data}


def _context(request: HtmxHttpRequest, form: Any, kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "form": form,
        "kind": kind,
        "kind_label": KIND_LABELS[kind],
        "kinds": [(k, KIND_LABELS[k]) for k in TRAINING_KINDS],
        "templates": _templates(request, "pipeline" if kind == "pipeline" else kind),
        "no_cluster": not Cluster.objects.filter(is_active=True).exists(),
        **extra,
    }


def training_create(request: HtmxHttpRequest) -> HttpResponse:
    kind = _kind(request)
    if request.method == "POST":
        form = TrainingJobForm(request.POST, user=request.user, kind=kind)
        if "save_template" in request.POST:
            template = _save_template(request, kind, request.POST.get("subteam", ""), form)
            if template is not None:
                return redirect(f"{request.path}?kind={kind}&template={template.pk}")
            return render(request, "scheduler/jobs/training_form.html", _context(request, form, kind))
        if form.is_valid():
            access.require(access.can_submit_job(request.user, form.cleaned_data["subteam"].pk))
            me = _submitter(request)
            spec = form.check()
            if spec is not None:
                try:
                    job = services.submit_job(me, spec)
                except ValidationError as error:
                    form.put_errors(error)
                else:
                    messages.success(request, _("Job submitted."))
                    return redirect(job)
        elif "subteam" in form.errors and request.POST.get("subteam"):
            access.require(False)
    else:
        if not (access.is_admin(request.user) or access.subteam_ids(request.user)):
            access.require(False)
        initial, template = _template_initial(request, kind)
        form = TrainingJobForm(user=request.user, kind=kind, initial={**_initial(request), **initial})
        if template is not None:
            return render(
                request, "scheduler/jobs/training_form.html", _context(request, form, kind, template=template)
            )
    return render(request, "scheduler/jobs/training_form.html", _context(request, form, kind))


@require_POST
def training_preview(request: HtmxHttpRequest) -> HttpResponse:
    """run.yaml and the sbatch script the form would submit (nothing is recorded)."""
    kind = _kind(request)
    form = TrainingJobForm(request.POST, user=request.user, kind=kind)
    preview: dict[str, Any] | None = None
    if form.is_valid():
        access.require(access.can_submit_job(request.user, form.cleaned_data["subteam"].pk))
        spec = form.check()
        if spec is not None:
            job = services.build_job(_submitter(request), spec)
            preview = {"job": job, "script": job.script, "config": job.config_yaml}
    context = _context(request, form, kind, preview=preview, previewed=True)
    if request.htmx:
        return render(request, "scheduler/jobs/training_form.html#preview", context)
    return render(request, "scheduler/jobs/training_form.html", context)


# --- pipelines ------------------------------------------------------------------------------------------


def pipeline_create(request: HtmxHttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = PipelineForm(request.POST, user=request.user)
        if "save_template" in request.POST:
            template = _save_template(request, "pipeline", request.POST.get("subteam", ""), form)
            if template is not None:
                return redirect(f"{request.path}?template={template.pk}")
        elif form.is_valid():
            access.require(access.can_submit_job(request.user, form.cleaned_data["subteam"].pk))
            me = _submitter(request)
            try:
                pipeline = services.submit_pipeline(me, form.cleaned_data["name"], form.specs())
            except ValidationError as error:
                form.put_errors(error)
            else:
                messages.success(
                    request, _("Pipeline submitted: each step runs only if the one before succeeds.")
                )
                return redirect(pipeline)
        elif "subteam" in form.errors and request.POST.get("subteam"):
            access.require(False)
    else:
        if not (access.is_admin(request.user) or access.subteam_ids(request.user)):
            access.require(False)
        initial, _template = _template_initial(request, "pipeline")
        form = PipelineForm(user=request.user, initial={**_initial(request), **initial})
    context = {
        "form": form,
        "kinds": [(k, KIND_LABELS[k]) for k in TRAINING_KINDS],
        "templates": _templates(request, "pipeline"),
        "no_cluster": not Cluster.objects.filter(is_active=True).exists(),
    }
    return render(request, "scheduler/pipelines/form.html", context)


def _pipelines() -> Any:
    return Pipeline.objects.select_related("subteam", "owner__user", "cluster").prefetch_related(
        Prefetch("jobs", queryset=Job.objects.select_related("subteam", "cluster"))
    )


@require_GET
def pipeline_list(request: HtmxHttpRequest) -> HttpResponse:
    pipelines = list(_pipelines()[:50])
    rows = [{"pipeline": p, "steps": p.steps(), "progress": Pipeline.progress(p.steps())} for p in pipelines]
    return render(request, "scheduler/pipelines/list.html", {"rows": rows})


@require_GET
def pipeline_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    pipeline = get_object_or_404(_pipelines(), pk=pk)
    steps = _decorate(pipeline.steps())
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
    template = get_object_or_404(JobTemplate, pk=pk)
    access.require(access.can_delete_job_template(request.user, template))
    kind = template.kind
    template.delete()
    messages.success(request, _("Template deleted."))
    if kind == "pipeline":
        return redirect("scheduler:pipeline-create")
    return redirect(f"/jobs/train/?kind={kind}")
