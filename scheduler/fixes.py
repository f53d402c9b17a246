"""The one-click fixes a failure's diagnosis offers (scheduler.triage.Fix): each is a resubmission
with one change, checked like any submission (the form's rules, the partition's limits, the member's
own account); a fix that cannot apply says why and submits nothing."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from portal.models import Member
from scheduler import inputs, services, training_jobs
from scheduler.models import Job, Partition
from scheduler.triage import BY_CODE, UNKNOWN, Fix


def offered(job: Job) -> list[str]:
    """The fixes the job's diagnosis offers that can apply to it (EDIT is the resubmit form)."""
    if not job.diagnosis:
        return []
    signature = BY_CODE.get(job.diagnosis.get("code", ""), UNKNOWN)
    found = []
    for action in signature.fixes:
        if action == Fix.EDIT:
            continue
        try:
            changes_for(job, action)
        except ValidationError:
            continue
        found.append(action)
    return found


def fix_job(actor: Member, job: Job, action: str) -> Job:
    """Resubmit `job` with the change `action` makes; ValidationError (nothing submitted) when the
    fix does not apply or the changed job would be refused."""
    return services.resubmit_job(actor, job, changes_for(job, action))


def changes_for(job: Job, action: str) -> dict[str, Any]:
    if action == Fix.EXTEND_TIME:
        return {"time_limit_minutes": _longer_time(job)}
    if action == Fix.EXCLUDE_NODE:
        return {"exclude_nodes": _excluding(job)}
    if action == Fix.HALVE_MICRO_BATCH:
        return {"training": _halved(job)}
    if action == Fix.RESUME:
        return {"training": _resuming(job)}
    raise ValidationError(_("Unknown fix."))


def _longer_time(job: Job) -> int:
    partition = Partition.objects.filter(cluster=job.cluster, name=job.partition).first()
    limit = partition.max_time_minutes if partition else services.DEFAULT_MAX_TIME_MINUTES
    longer = job.time_limit_minutes * 2 if limit is None else min(limit, job.time_limit_minutes * 2)
    if longer <= job.time_limit_minutes:
        raise ValidationError(
            _("The job already has the partition's longest time limit (%(n)d min).") % {"n": limit or 0}
        )
    return longer


def _excluding(job: Job) -> str:
    node = (job.diagnosis or {}).get("node", "")
    if not node:
        raise ValidationError(_("The diagnosis names no node to exclude."))
    if not job.exclude_nodes:
        return str(node)
    return f"{job.exclude_nodes},{node}"


def _request(job: Job) -> training_jobs.TrainingRequest:
    data = (job.parameters or {}).get("training")
    if not job.trains or not data:
        raise ValidationError(_("Only a training run has this fix."))
    return training_jobs.TrainingRequest.from_dict(data)


def _halved(job: Job) -> training_jobs.TrainingRequest:
    """Micro batch halved (or the largest divisor below half) and accumulation raised to match: the
    global batch is exactly the same."""
    request = _request(job)
    micro = request.micro_batch_size
    smaller = next((d for d in range(micro // 2, 0, -1) if micro % d == 0), 0)
    if smaller < 1:
        raise ValidationError(_("The micro batch is already 1."))
    ranks = training_jobs.data_parallel_size(job.nodes, job.gpus_per_node)
    accumulation = training_jobs.accumulation_steps(request, job.nodes, job.gpus_per_node)
    before = micro * accumulation * ranks
    request.micro_batch_size = smaller
    request.gradient_accumulation_steps = accumulation * (micro // smaller)
    request.global_batch_size = None
    after = request.micro_batch_size * request.gradient_accumulation_steps * ranks
    if after != before:  # cannot happen by construction; refuse rather than train differently
        raise ValidationError(_("The global batch would change (%(a)d → %(b)d).") % {"a": before, "b": after})
    return request


def _resuming(job: Job) -> training_jobs.TrainingRequest:
    """The same run, resuming from the latest complete checkpoint in this job's output directory."""
    request = _request(job)
    extra = inputs.load_yaml(request.extra_yaml) if request.extra_yaml.strip() else {}
    if not isinstance(extra, dict):
        extra = {}
    checkpoint = extra.setdefault("checkpoint", {})
    if not isinstance(checkpoint, dict):
        checkpoint = extra["checkpoint"] = {}
    checkpoint["resume"] = job.output_dir
    request.extra_yaml = training_jobs.to_yaml(extra)
    return request
