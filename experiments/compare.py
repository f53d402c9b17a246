"""What differs between runs: their configs (only the fields that differ), their data sets, their scores
per category, and which loss curves to overlay. Used by the compare page, the sweep table and the
notification that a result took the top of a board (its diff against the previous best)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from evals.models import CATEGORIES, EvalResult
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
