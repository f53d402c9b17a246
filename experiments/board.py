"""How the leaderboard groups its rows (settings.EVAL_RESULT_GROUPS; evals.views asks it).

A result whose model a run of a sweep trained goes with the sweep's other runs; else with the results of
models trained from the same base model (the lineage's model record, followed up to the first model not
trained here, else the training request's model); else with the results of the same model name. A
baseline stands alone. The same few queries however many results.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from django.urls import NoReverseMatch

from evals.models import EvalResult
from experiments.models import ModelRecord, Sweep, SweepRun
from scheduler.models import Job

GroupKind = Literal["sweep", "base", "model", "baseline"]
LINEAGE_DEPTH = 8  # how far up `ModelRecord.base` a base model is looked for (one query per step)


@dataclass(frozen=True)
class Group:
    key: str  # the same for every result of the group, and for no other
    label: str
    url: str | None  # the sweep's page; None for the other kinds
    kind: GroupKind


def groups(results: Sequence[EvalResult]) -> dict[int, Group]:
    """Result pk -> its group."""
    trained = {r.trained_by_job_id for r in results if r.trained_by_job_id is not None and not r.is_baseline}
    sweeps = _sweep_groups(trained)
    bases = _base_models(trained - sweeps.keys(), results)
    found: dict[int, Group] = {}
    for result in results:
        job_id = result.trained_by_job_id
        if result.is_baseline:
            found[result.pk] = Group(f"baseline:{result.pk}", result.model_name, None, "baseline")
        elif job_id is not None and job_id in sweeps:
            found[result.pk] = sweeps[job_id]
        elif job_id is not None and job_id in bases:
            base = bases[job_id].rstrip("/") or bases[job_id]
            found[result.pk] = Group(f"base:{base}", short_name(base), None, "base")
        else:
            found[result.pk] = Group(f"model:{result.model_name}", result.model_name, None, "model")
    return found


def short_name(model: str) -> str:
    """A hub name or a path by its last part: `meta-llama/Llama-3.1-8B` -> `Llama-3.1-8B`."""
    return model.rstrip("/").rsplit("/", 1)[-1] or model


def _sweep_url(sweep: Sweep) -> str | None:
    try:
        return sweep.get_absolute_url()
    except NoReverseMatch:  # the experiments pages are not wired into this site's URLs
        return None


def _sweep_groups(job_ids: set[uuid.UUID]) -> dict[uuid.UUID, Group]:
    """Training job -> the group of its sweep, for the jobs that are runs of a sweep (one query)."""
    if not job_ids:
        return {}
    by_sweep: dict[int, Group] = {}
    found: dict[uuid.UUID, Group] = {}
    for run in SweepRun.objects.filter(job_id__in=job_ids).select_related("sweep"):
        sweep = run.sweep
        if sweep.pk not in by_sweep:
            by_sweep[sweep.pk] = Group(f"sweep:{sweep.pk}", sweep.name, _sweep_url(sweep), "sweep")
        found[run.job_id] = by_sweep[sweep.pk]
    return found


def _base_models(job_ids: set[uuid.UUID], results: Iterable[EvalResult]) -> dict[uuid.UUID, str]:
    """Training job -> the model it trained from: its model record's lineage, else its request's model."""
    if not job_ids:
        return {}
    found = _recorded_bases(job_ids)
    for job_id, parameters in _parameters(job_ids - found.keys(), results).items():
        model = _requested_model(parameters)
        if model:
            found[job_id] = model
    return found


def _recorded_bases(job_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Job -> the base model of the model it wrote, followed up `ModelRecord.base` (a model trained here
    from another job's output) to the first one trained from elsewhere: one query per step up."""
    found: dict[uuid.UUID, str] = {}
    waiting: dict[int, list[uuid.UUID]] = {}  # record pk -> the jobs whose base is that record's model
    rows = ModelRecord.objects.filter(job_id__in=job_ids).values_list("job_id", "base_model", "base_id")
    for job_id, base_model, base_id in rows:
        if base_model:
            found[job_id] = base_model
        if base_id is not None:
            waiting.setdefault(base_id, []).append(job_id)
    for _step in range(LINEAGE_DEPTH):
        if not waiting:
            break
        above: dict[int, list[uuid.UUID]] = {}
        for pk, base_model, base_id in ModelRecord.objects.filter(pk__in=waiting).values_list(
            "pk", "base_model", "base_id"
        ):
            for job_id in waiting[pk]:
                if base_model:
                    found[job_id] = base_model
                if base_id is not None:
                    above.setdefault(base_id, []).append(job_id)
        waiting = above
    return found


def _parameters(job_ids: set[uuid.UUID], results: Iterable[EvalResult]) -> dict[uuid.UUID, Any]:
    """Job -> its parameters: from the results' training jobs where already loaded, else one query."""
    if not job_ids:
        return {}
    found: dict[uuid.UUID, Any] = {}
    for result in results:
        job_id = result.trained_by_job_id
        loaded = EvalResult.trained_by_job.is_cached(result)
        if job_id in job_ids and loaded and result.trained_by_job is not None:
            found[job_id] = result.trained_by_job.parameters
    missing = job_ids - found.keys()
    if missing:
        found.update(Job.objects.filter(pk__in=missing).values_list("pk", "parameters"))
    return found


def _requested_model(parameters: Any) -> str:
    training = parameters.get("training") if isinstance(parameters, dict) else None
    model = training.get("model") if isinstance(training, dict) else None
    return model.strip() if isinstance(model, str) else ""
