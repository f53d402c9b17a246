"""Jobs: the list, the submit form (with a preview of the sbatch script), a job's page, cancel, resubmit.

Every write is a `scheduler.services` call and every permission a `scheduler.access` predicate. No view
talks to a cluster: the worker submits, polls and reads logs; these pages show what it stored.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.forms import BaseForm
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from portal.access import member_of, refuse_unoffered_subteam, require, require_member
from portal.http import HtmxHttpRequest
from portal.models import Member, Subteam
from scheduler import access, drains, fixes, logs, pending, services, triage
from scheduler.forms import JobForm, initial_from, spec_errors
from scheduler.models import Cluster, Job, JobEvent, JobLogChunk

PAGE_SIZE = 50
TAIL_LINES = 200


def job_rows() -> QuerySet[Job]:
    return Job.objects.select_related("subteam", "owner__user", "cluster")


# --- list -----------------------------------------------------------------------------------------------


def _filtered(request: HtmxHttpRequest) -> tuple[QuerySet[Job], dict[str, str]]:
    """The jobs the query string asks for (`subteam` slug, `state`, `owner` me|username, `cluster` id)."""
    jobs = job_rows()
    chosen = {key: request.GET.get(key, "").strip() for key in ("subteam", "state", "owner", "cluster")}
    if chosen["subteam"]:
        jobs = jobs.filter(subteam__slug=chosen["subteam"])
    if chosen["state"] in Job.State.values:
        jobs = jobs.filter(state=chosen["state"])
    elif chosen["state"] == "live":
        jobs = jobs.exclude(state__in=list(Job.TERMINAL_STATES))
    else:
        chosen["state"] = ""
    if chosen["owner"] == "me":
        me = member_of(request.user)
        jobs = jobs.filter(owner=me) if me is not None else jobs.none()
    elif chosen["owner"]:
        jobs = jobs.filter(owner__user__username=chosen["owner"])
    if chosen["cluster"].isdigit():
        jobs = jobs.filter(cluster_id=int(chosen["cluster"]))
    else:
        chosen["cluster"] = ""
    return jobs, chosen


@require_GET
def job_list(request: HtmxHttpRequest) -> HttpResponse:
    jobs, chosen = _filtered(request)
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "jobs": rows,
        "page": page,
        "query": query.urlencode(),
        "chosen": chosen,
        "live": any(not job.is_terminal for job in rows),
    }
    if request.htmx:
        return render(request, "scheduler/jobs/list.html#table", context)
    context.update(
        subteams=Subteam.objects.all(),
        clusters=Cluster.objects.all(),
        states=Job.State.choices,
        can_submit=access.may_submit_jobs(request.user),
    )
    return render(request, "scheduler/jobs/list.html", context)


# --- submit ---------------------------------------------------------------------------------------------


def _put_errors(form: JobForm, error: ValidationError) -> None:
    """The service's errors next to the fields they are about (the cluster changed since the check)."""
    for field, errors in spec_errors(error).items():
        form.add_error(field if field in form.fields else None, errors)


def submitter_of(request: HtmxHttpRequest, form: BaseForm) -> Member | None:
    """Who submits the posted form (any of the submit forms), once it is valid; None, with the
    problems on the form, when it is not. Refuses (403) a subteam the user may not submit for, and an
    account without a member profile (jobs belong to a member)."""
    if not form.is_valid():
        refuse_unoffered_subteam(form, request.POST)
        return None
    require(access.can_submit_job(request.user, form.cleaned_data["subteam"].pk))
    return require_member(request.user)


def _preview(owner: Member, specs: list[services.JobSpec]) -> list[dict[str, Any]]:
    """The sbatch scripts the worker would send, rendered on unsaved Jobs (nothing is recorded)."""
    steps: list[dict[str, Any]] = []
    previous: Job | None = None
    for spec in specs:
        job = services.build_job(owner, spec, depends_on=previous)
        steps.append({"job": job, "script": job.script, "after": previous})
        previous = job
    return steps


def _form_context(form: JobForm, **extra: Any) -> dict[str, Any]:
    clusters = list(Cluster.objects.filter(is_active=True).prefetch_related("partitions"))
    kinds = [(k, label) for k, label in Job.Kind.choices if k != Job.Kind.CUSTOM]
    return {"form": form, "clusters": clusters, "no_cluster": not clusters, "kinds": kinds, **extra}


def _initial(request: HtmxHttpRequest) -> dict[str, Any]:
    initial: dict[str, Any] = {}
    slug = request.GET.get("subteam")
    if slug:
        subteam = Subteam.objects.filter(slug=slug).first()
        if subteam is not None and access.can_submit_job(request.user, subteam.pk):
            initial["subteam"] = subteam.pk
    clusters = list(Cluster.objects.filter(is_active=True).values_list("pk", flat=True)[:2])
    if len(clusters) == 1:
        initial["cluster"] = clusters[0]
    return initial


def _submit(request: HtmxHttpRequest, form: JobForm) -> list[Job] | None:
    me = submitter_of(request, form)
    specs = form.check() if me is not None else None
    if me is None or specs is None:
        return None
    try:
        return services.submit_chain(me, specs)
    except ValidationError as error:
        _put_errors(form, error)
        return None


def job_create(request: HtmxHttpRequest) -> HttpResponse:
    """The submit form; with "then run" filled in, two jobs: the second runs after the first succeeds."""
    if not Cluster.objects.filter(is_active=True).exists():
        return render(request, "scheduler/jobs/form.html", _form_context(JobForm(user=request.user)))
    if request.method != "POST":
        require(access.may_submit_jobs(request.user))
        form = JobForm(user=request.user, initial=_initial(request))
        return render(request, "scheduler/jobs/form.html", _form_context(form))
    form = JobForm(request.POST, user=request.user)
    jobs = _submit(request, form)
    if jobs is None:
        return render(request, "scheduler/jobs/form.html", _form_context(form))
    if len(jobs) > 1:
        messages.success(request, _("Two jobs submitted: the second runs only if the first succeeds."))
    else:
        messages.success(request, _("Job submitted."))
    return redirect(jobs[0])


@require_POST
def job_preview(request: HtmxHttpRequest) -> HttpResponse:
    """The scripts the form would submit; htmx gets the preview fragment, a plain POST the whole form."""
    form = JobForm(request.POST, user=request.user)
    me = submitter_of(request, form)
    specs = form.check() if me is not None else None
    preview = _preview(me, specs) if me is not None and specs is not None else []
    # Slurm's estimate for the first step (the later ones wait for it), asked as the member.
    estimate = pending.estimate_start(preview[0]["job"]) if preview else None
    context = _form_context(form, preview=preview, previewed=True, estimate=estimate)
    if request.htmx:
        return render(request, "scheduler/jobs/form.html#preview", context)
    return render(request, "scheduler/jobs/form.html", context)


# --- one job --------------------------------------------------------------------------------------------


def _job(pk: object) -> Job:
    return get_object_or_404(
        Job.objects.select_related(
            "subteam",
            "owner__user",
            "cluster",
            "cancel_requested_by__user",
            "resubmitted_from",
            "eval_result",
        ),
        pk=pk,
    )


def _live_context(request: HtmxHttpRequest, job: Job) -> dict[str, Any]:
    """What changes while a job runs: its state, facts, timeline, chain and logs."""
    events = list(JobEvent.objects.filter(job=job).select_related("actor__user"))
    chain = job.chain
    can_resubmit = access.can_resubmit_job(request.user, job)
    diagnosis = triage.summary(job, fixes.offered(job) if can_resubmit else [])
    proof: dict[str, set[str]] = {}
    for line in (diagnosis or {}).get("evidence", []):
        proof.setdefault(line["stream"], set()).add(line["text"])
    streams = []
    for stream in JobLogChunk.Stream.values:
        text = logs.tail(job, stream, TAIL_LINES)
        marked = proof.get(stream, set())
        lines = [
            {"text": line, "mark": line.rstrip()[: triage.EVIDENCE_CHARS] in marked}
            for line in text.splitlines()
        ]
        streams.append({"name": stream, "text": text, "lines": lines})
    return {
        "job": job,
        "events": events,
        "chain": chain if len(chain) > 1 else [],
        "streams": streams,
        "tail_lines": TAIL_LINES,
        "diagnosis": diagnosis,
        "waiting": pending.explain(job),
        "can_cancel": not job.is_terminal and access.can_cancel_job(request.user, job),
        "can_resubmit": can_resubmit,
        "incidents": drains.for_job(job),
    }


@require_GET
def job_detail(request: HtmxHttpRequest, pk: object) -> HttpResponse:
    job = _job(pk)
    context = _live_context(request, job)
    if request.htmx:
        return render(request, "scheduler/jobs/detail.html#live", context)
    return render(request, "scheduler/jobs/detail.html", context)


@require_GET
def job_log(request: HtmxHttpRequest, pk: object, stream: str) -> HttpResponse:
    """A job's whole stored stdout or stderr (from `?offset=` bytes), as plain text."""
    job = get_object_or_404(Job.objects.only("pk"), pk=pk)
    if stream not in JobLogChunk.Stream.values:
        return HttpResponse(_("Unknown log stream."), status=404, content_type="text/plain; charset=utf-8")
    offset = request.GET.get("offset", "0")
    text, _next = logs.log_text(job, stream, int(offset) if offset.isdigit() else 0)
    return HttpResponse(text, content_type="text/plain; charset=utf-8")


@require_POST
def job_cancel(request: HtmxHttpRequest, pk: object) -> HttpResponse:
    job = access.get_job_to_cancel(request.user, pk)
    was_terminal = job.is_terminal
    job = services.cancel_job(member_of(request.user), job)
    if request.htmx:
        return render(request, "scheduler/jobs/detail.html#live", _live_context(request, _job(job.pk)))
    if was_terminal:
        messages.info(request, _("The job had already finished."))
    elif job.state == Job.State.CANCELLED:
        messages.success(request, _("Job cancelled."))
    else:
        messages.success(request, _("Cancel requested; the job stops once Slurm confirms it."))
    return redirect(job)


@require_POST
def job_fix(request: HtmxHttpRequest, pk: object) -> HttpResponse:
    """One of the diagnosis's fixes: the job resubmitted with that one change."""
    job = _job(pk)
    require(access.can_resubmit_job(request.user, job))
    me = require_member(request.user)
    action = request.POST.get("action", "")
    try:
        new = fixes.fix_job(me, job, action)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect(job)
    messages.success(request, _("Resubmitted: %(fix)s.") % {"fix": triage.Fix.LABELS.get(action, action)})
    return redirect(new)


def job_resubmit(request: HtmxHttpRequest, pk: object) -> HttpResponse:
    """The submit form prefilled from a job; submitting records a new job linked to the old one."""
    job = _job(pk)
    require(access.can_resubmit_job(request.user, job))
    if request.method != "POST":
        form = JobForm(user=request.user, chain=False, initial=initial_from(job))
        return render(request, "scheduler/jobs/form.html", _form_context(form, resubmit_of=job))
    form = JobForm(request.POST, user=request.user, chain=False)
    new = _resubmit(request, form, job)
    if new is None:
        return render(request, "scheduler/jobs/form.html", _form_context(form, resubmit_of=job))
    messages.success(request, _("Job resubmitted."))
    return redirect(new)


def _resubmit(request: HtmxHttpRequest, form: JobForm, job: Job) -> Job | None:
    if not form.is_valid():
        refuse_unoffered_subteam(form, request.POST)
        return None
    require(access.can_resubmit_job(request.user, job, form.cleaned_data["subteam"].pk))
    me = require_member(request.user)
    if form.check() is None:
        return None
    try:
        return services.resubmit_job(me, job, form.changes())
    except ValidationError as error:
        _put_errors(form, error)
        return None
