"""What differs between runs: their configs (only the fields that differ), their data sets, their scores
per category, and which loss curves to overlay. Used by the compare page, the sweep table and the
notification that a result took the top of a board (its diff against the previous best)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch

from evals.models import CATEGORIES, EvalResult
from experiments.models import JobDataset
from scheduler import training_jobs
from scheduler.models import Job

# Fields of a job's parameters that are resources, not the training request's.
RESOURCE_FIELDS = ("nodes", "gpus_per_node", "time_limit_minutes", "partition")
# Request fields that say nothing about the run's outcome (where its logs go, how it is launched).
IGNORED_FIELDS = frozenset({"kind", "wandb_project", "wandb_tags", "wandb_mode", "judge_endpoint"})
MISSING = object()


def kind_fields(kind: str) -> set[str]:
    """The training request's fields a kind uses (an SFT job's config has no judge, an eval's no LoRA)."""
    return {d.name for d in training_jobs.declared_fields(kind)}


def config_of(job: Job) -> dict[str, Any]:
    """A job's config as flat fields: its training request's fields and its resources."""
    parameters = job.parameters if isinstance(job.parameters, dict) else {}
    training = parameters.get("training")
    flat: dict[str, Any] = {}
    if isinstance(training, dict):
        used = kind_fields(job.kind)
        for key, value in training.items():
            if key not in IGNORED_FIELDS and key in used:
                flat[key] = value
    else:
        flat["command"] = job.command
    for key in RESOURCE_FIELDS:
        if key in parameters:
            flat[key] = parameters[key]
    return flat


def _same(values: Sequence[Any]) -> bool:
    first = values[0]
    return all(value == first for value in values[1:])


@dataclass(frozen=True)
class FieldDiff:
    field: str
    values: tuple[Any, ...]  # one per job, MISSING where a job has no such field

    @property
    def shown(self) -> list[str]:
        return [show(value) for value in self.values]


def show(value: Any) -> str:
    if value is MISSING or value is None:
        return "—"
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)


def config_diff(configs: Sequence[dict[str, Any]]) -> list[FieldDiff]:
    """The fields whose values differ between the configs (in the first config's order, then the rest)."""
    keys: list[str] = []
    for config in configs:
        keys.extend(key for key in config if key not in keys)
    found = []
    for key in keys:
        values = tuple(config.get(key, MISSING) for config in configs)
        if not _same(values):
            found.append(FieldDiff(key, values))
    return found


def diff_pairs(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, str]]:
    """`config_diff` of two configs as plain data (stored on a BoardRecord, sent to Slack)."""
    return [
        {"field": d.field, "before": d.shown[0], "after": d.shown[1]} for d in config_diff([before, after])
    ]


@dataclass
class ScoreDelta:
    category: str  # "average" or one of CATEGORIES
    values: list[float | None]
    deltas: list[float | None] = field(default_factory=list)  # against the first


def score_deltas(results: Sequence[EvalResult | None]) -> list[ScoreDelta]:
    """Per category (average first): each result's score and its difference from the first result's."""
    rows = []
    for category in ("average", *CATEGORIES):
        values = [getattr(result, category) if result is not None else None for result in results]
        base = values[0]
        deltas = [None if (v is None or base is None) else round(v - base, 2) for v in values]
        rows.append(ScoreDelta(category, values, deltas))
    return rows


def dataset_refs(uses: Iterable[Any]) -> dict[str, str]:
    """role → "a@v1, b@v2" for a job's JobDataset rows (prefetched with their data sets)."""
    found: dict[str, list[str]] = {}
    for use in uses:
        found.setdefault(use.role, []).append(use.dataset.ref)
    return {role: ", ".join(sorted(refs)) for role, refs in found.items()}


# --- what is compared -----------------------------------------------------------------------------------

MAX_COMPARED = 12


def parse_ids(jobs: Sequence[str], results: Sequence[str]) -> tuple[list[uuid.UUID], list[int], list[str]]:
    """Job ids and result ids from `?jobs=…&results=…` (repeated or comma-separated), each once, and the
    values that are neither."""
    job_ids: list[uuid.UUID] = []
    result_ids: list[int] = []
    bad: list[str] = []
    for value in jobs[: MAX_COMPARED * 2]:
        for part in filter(None, (p.strip() for p in value.split(","))):
            try:
                job_ids.append(uuid.UUID(part))
            except ValueError:
                bad.append(part[:40])
    for value in results[: MAX_COMPARED * 2]:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if part.isdigit():
                result_ids.append(int(part))
            else:
                bad.append(part[:40])
    return list(dict.fromkeys(job_ids)), list(dict.fromkeys(result_ids)), bad


@dataclass
class Compared:
    label: str
    url: str
    job: Job | None  # the training job
    result: EvalResult | None


def pick(job_ids: list[uuid.UUID], result_ids: list[int]) -> list[Compared]:
    """The runs to compare, results first: a result with the job that trained it; a training job with its
    latest result; an evaluation job with its result and that result's training job (a fixed number of
    queries)."""
    job_query = Job.objects.select_related("owner").prefetch_related(
        Prefetch("dataset_uses", queryset=JobDataset.objects.select_related("dataset"))
    )
    results = {
        r.pk: r for r in EvalResult.objects.filter(pk__in=result_ids).select_related("job", "trained_by_job")
    }
    jobs = {j.pk: j for j in job_query.filter(pk__in=job_ids)}
    evaluated = {r.job_id: r for r in EvalResult.objects.filter(job_id__in=job_ids)}
    trained: dict[Any, EvalResult] = {}
    for r in EvalResult.objects.filter(trained_by_job_id__in=job_ids).order_by("-created_at"):
        trained.setdefault(r.trained_by_job_id, r)
    training_ids = {
        r.trained_by_job_id for r in [*results.values(), *evaluated.values()] if r.trained_by_job_id
    }
    training: dict[Any, Job] = {j.pk: j for j in job_query.filter(pk__in=training_ids)} | {
        pk: j for pk, j in jobs.items() if j.kind in Job.Kind.kinds_that_train()
    }
    found = [
        Compared(picked.model_name, picked.get_absolute_url(), training.get(picked.trained_by_job_id), picked)
        for picked in (results[rid] for rid in result_ids if rid in results)
    ]
    for jid in job_ids:
        if (job := jobs.get(jid)) is None:
            continue
        if job.kind == Job.Kind.EVAL:
            result = evaluated.get(job.pk)
            trainer = training.get(result.trained_by_job_id) if result is not None else None
            found.append(Compared(job.name, job.get_absolute_url(), trainer, result))
        else:
            found.append(
                Compared(job.name, job.get_absolute_url(), training.get(job.pk), trained.get(job.pk))
            )
    return found[:MAX_COMPARED]


@dataclass
class Comparison:
    config: list[FieldDiff]  # the config fields that differ
    same: int  # how many config fields are the same in all
    datasets: list[FieldDiff]  # the data sets that differ, per role
    scores: list[ScoreDelta]  # empty when none has a result


def comparison(items: Sequence[Compared]) -> Comparison:
    configs = [config_of(item.job) if item.job is not None else {} for item in items]
    differ = config_diff(configs) if items else []
    uses = [dataset_refs(item.job.dataset_uses.all()) if item.job is not None else {} for item in items]
    return Comparison(
        config=differ,
        same=len(set().union(*configs)) - len(differ) if configs else 0,
        datasets=config_diff([{f"datasets ({role})": refs for role, refs in u.items()} for u in uses])
        if items
        else [],
        scores=score_deltas([item.result for item in items]) if any(i.result for i in items) else [],
    )
