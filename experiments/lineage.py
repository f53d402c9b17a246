"""Lineage: data set → job → model → score, both ways.

`record_models` (a step of the worker's cycle, no command) keeps the records: each job that named data
sets gets a `JobDataset` row per data set (with the hash the version had when it was submitted), and
each training job that completed gets a `ModelRecord` (its output directory, its base model — another
job's model when it trained from one — its data sets and its config). An evaluation result links to the
model through the job that trained it (`EvalResult.trained_by_job`).

`for_job`, `for_result` and `for_dataset` build the graph a lineage page draws and the API returns: nodes
in columns (data sets, base model, training job, model, results) and the edges between them. Each runs a
fixed number of queries whatever the number of runs; a column shows at most `MAX_PER_COLUMN` nodes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Prefetch

from evals.models import EvalResult
from experiments.compare import config_of
from experiments.models import Dataset, JobDataset, ModelRecord
from scheduler.models import Job

if TYPE_CHECKING:
    from scheduler.steps import Poll

log = logging.getLogger("experiments")

BATCH = 200
MAX_PER_COLUMN = 40
MAX_DEPTH = 5  # base models followed back at most this far
COLUMNS = ("dataset", "base", "job", "model", "result")
SUMMARY_FIELDS = ("learning_rate", "lora_r", "dpo_beta", "num_train_epochs", "max_steps")


# --- keeping the records (the worker's step) --------------------------------------------------------------


def _record_uses(jobs: list[Job]) -> int:
    ids = {int(d["id"]) for job in jobs for d in job.parameters.get("datasets") or [] if isinstance(d, dict)}
    known = set(Dataset.objects.filter(pk__in=ids).values_list("pk", flat=True))
    rows = [
        JobDataset(
            job=job, dataset_id=int(d["id"]), role=JobDataset.Role.TRAIN, sha256=str(d.get("sha256", ""))[:64]
        )
        for job in jobs
        for d in job.parameters.get("datasets") or []
        if isinstance(d, dict) and int(d.get("id", 0)) in known
    ]
    JobDataset.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _base_path(job: Job) -> str:
    config = job.parameters.get("config") if isinstance(job.parameters, dict) else None
    model = (config or {}).get("model") or {}
    return str(model.get("name_or_path", "")) if isinstance(model, dict) else ""


@transaction.atomic
def _record_models(jobs: list[Job]) -> int:
    """A model record per job (the jobs have none yet), in a few queries whatever their number: the
    records, then the bases that are models of this batch, then their data sets."""
    bases = {_base_path(job).rstrip("/") for job in jobs} - {""}
    parents = {record.path: record for record in ModelRecord.objects.filter(path__in=bases)}
    records = ModelRecord.objects.bulk_create(
        ModelRecord(
            job=job,
            path=job.output_dir,
            base_model=_base_path(job),
            base=parents.get(_base_path(job).rstrip("/")),
            config=config_of(job),
        )
        for job in jobs
    )
    mine = {record.path.rstrip("/"): record for record in records}
    trained_here = [r for r in records if r.base is None and r.base_model.rstrip("/") in mine]
    for record in trained_here:  # trained from the output of a job recorded in this same batch
        record.base = mine[record.base_model.rstrip("/")]
    ModelRecord.objects.bulk_update(trained_here, ["base"])
    by_job = {record.job_id: record.pk for record in records}
    uses = JobDataset.objects.filter(job__in=jobs, role=JobDataset.Role.TRAIN).values_list(
        "job_id", "dataset_id"
    )
    ModelRecord.datasets.through.objects.bulk_create(
        ModelRecord.datasets.through(modelrecord_id=by_job[job_id], dataset_id=dataset_id)
        for job_id, dataset_id in uses
    )
    return len(records)


def record_models(poll: Poll) -> None:
    """Data set uses of newly submitted jobs; model records of training jobs that completed."""
    cluster = poll.cluster
    new_uses = list(
        Job.objects.filter(cluster=cluster, parameters__has_key="datasets", dataset_uses__isnull=True)
        .select_related("cluster")
        .order_by("created_at")[:BATCH]
    )
    if new_uses:
        _record_uses(new_uses)
    done = list(
        Job.objects.filter(
            cluster=cluster,
            kind__in=Job.Kind.kinds_that_train(),
            state=Job.State.COMPLETED,
            model_record__isnull=True,
        )
        .select_related("cluster")
        .order_by("ended_at")[:BATCH]
    )
    if done:
        _record_models(done)


# --- the graph ------------------------------------------------------------------------------------------


@dataclass
class Node:
    key: str  # unique in the graph: "dataset:3", "job:<uuid>", "model:5", "result:9", "base:<name>"
    kind: str  # one of COLUMNS
    label: str
    detail: str = ""
    url: str = ""
    focus: bool = False  # the node the page is about
    row: int = 0  # set by `Lineage.layout`

    @property
    def column(self) -> int:
        return COLUMNS.index(self.kind)


@dataclass
class Lineage:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: set[tuple[str, str]] = field(default_factory=set)
    more: dict[str, int] = field(default_factory=dict)  # column kind → nodes left out
    jobs: list[Job] = field(default_factory=list)  # the training jobs shown (their configs, in the page)
    results: list[EvalResult] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list)

    def add(self, node: Node) -> bool:
        if node.key in self.nodes:
            if node.focus:
                self.nodes[node.key].focus = True
            return True
        shown = sum(1 for n in self.nodes.values() if n.kind == node.kind)
        if shown >= MAX_PER_COLUMN:
            self.more[node.kind] = self.more.get(node.kind, 0) + 1
            return False
        self.nodes[node.key] = node
        return True

    def link(self, source: str, target: str) -> None:
        if source in self.nodes and target in self.nodes:
            self.edges.add((source, target))

    def layout(self) -> list[list[Node]]:
        columns: list[list[Node]] = [[] for _ in COLUMNS]
        for node in self.nodes.values():
            columns[node.column].append(node)
        for column in columns:
            for row, node in enumerate(column):
                node.row = row
        return columns

    def as_dict(self) -> dict[str, Any]:
        return {
            "nodes": [
                {
                    "id": n.key,
                    "kind": n.kind,
                    "label": n.label,
                    "detail": n.detail,
                    "url": n.url,
                    "focus": n.focus,
                }
                for n in self.nodes.values()
            ],
            "edges": [{"from": a, "to": b} for a, b in sorted(self.edges)],
            "left_out": self.more,
        }


def _dataset_node(dataset: Dataset, focus: bool = False) -> Node:
    detail = f"sha256 {dataset.sha256[:12]}" if dataset.sha256 else dataset.get_state_display()
    if dataset.rows is not None:
        detail += f" · {dataset.rows:,} rows"
    return Node(
        f"dataset:{dataset.pk}", "dataset", dataset.ref, str(detail), dataset.get_absolute_url(), focus
    )


def _job_detail(job: Job) -> str:
    config = config_of(job)
    parts = [
        f"{key}={config[key]}" for key in SUMMARY_FIELDS if key in config and config[key] not in (None, -1)
    ]
    if config.get("lora"):
        parts.append("LoRA")
    return " ".join(parts[:4])


def _job_node(job: Job, focus: bool = False) -> Node:
    return Node(f"job:{job.pk}", "job", job.name, _job_detail(job), job.get_absolute_url(), focus)


def _model_node(record: ModelRecord, job: Job) -> Node:
    return Node(f"model:{record.pk}", "model", f"{job.name}/out", record.path)


def _result_node(result: EvalResult, focus: bool = False) -> Node:
    score = f"{result.average:.2f}" if result.average is not None else "—"
    return Node(
        f"result:{result.pk}",
        "result",
        f"{result.benchmark_label} {score}",
        result.model_name,
        result.get_absolute_url(),
        focus,
    )


def _base_node(job: Job, lineage: Lineage) -> str | None:
    """The node of what the job trained from: another job's model (its record) or a name/path."""
    base = _base_path(job)
    record = getattr(job, "model_record", None)
    parent = record.base if record is not None else None
    if parent is not None:
        node = Node(f"model:{parent.pk}", "base", parent.job.name, parent.path, parent.job.get_absolute_url())
    elif base:
        node = Node(f"base:{base}", "base", base.rstrip("/").rsplit("/", 1)[-1] or base, base)
    else:
        return None
    lineage.add(node)
    return node.key


def _job_query() -> Any:
    return Job.objects.select_related("model_record__base__job", "cluster", "owner").prefetch_related(
        Prefetch("dataset_uses", queryset=JobDataset.objects.select_related("dataset__derived_from"))
    )


def _add_training(lineage: Lineage, jobs: list[Job], results: list[EvalResult], focus: str = "") -> None:
    """Each job with its data sets and base model before it, its model and results after it."""
    by_job: dict[Any, list[EvalResult]] = {}
    for result in results:
        by_job.setdefault(result.trained_by_job_id, []).append(result)
    for job in jobs:
        node = _job_node(job, focus=focus == f"job:{job.pk}")
        job_key = node.key
        if not lineage.add(node):
            continue
        lineage.jobs.append(job)
        for use in job.dataset_uses.all():
            dataset = use.dataset
            added = lineage.add(_dataset_node(dataset, focus=focus == f"dataset:{dataset.pk}"))
            if added and dataset not in lineage.datasets:
                lineage.datasets.append(dataset)
            lineage.link(f"dataset:{dataset.pk}", job_key)
        base_key = _base_node(job, lineage)
        if base_key is not None:
            lineage.link(base_key, job_key)
        record = getattr(job, "model_record", None)
        model_key = None
        if record is not None and lineage.add(_model_node(record, job)):
            model_key = f"model:{record.pk}"
            lineage.link(job_key, model_key)
        for result in by_job.get(job.pk, []):
            if lineage.add(_result_node(result, focus=focus == f"result:{result.pk}")):
                lineage.results.append(result)
            lineage.link(model_key or job_key, f"result:{result.pk}")


def _results_of(job_ids: list[Any]) -> list[EvalResult]:
    return list(
        EvalResult.objects.filter(trained_by_job_id__in=job_ids)
        .select_related("job", "subteam")
        .order_by("-average", "-pk")[: MAX_PER_COLUMN * 2]
    )


def _ancestors(job: Job) -> list[Job]:
    """The jobs whose models this one trained from, nearest first (through model records' bases)."""
    found: list[Job] = []
    record = getattr(job, "model_record", None)
    if record is None or record.base_id is None:
        return found
    # The chain up to MAX_DEPTH in one query (a join per level), not one query per level.
    chain = ModelRecord.objects.select_related("__".join(["base"] * MAX_DEPTH)).get(pk=record.pk)
    parent = chain.base
    ids: list[Any] = []
    while parent is not None and len(ids) < MAX_DEPTH:
        ids.append(parent.job_id)
        parent = parent.base
    if ids:
        by_id = {j.pk: j for j in _job_query().filter(pk__in=ids)}
        found = [by_id[i] for i in ids if i in by_id]
    return found


def for_job(job_id: Any) -> Lineage:
    """A training job's lineage: its data sets, base model (and the jobs that made it), model, results,
    and what was trained from its model."""
    lineage = Lineage()
    job = _job_query().get(pk=job_id)
    children = list(_job_query().filter(model_record__base__job_id=job.pk)[:MAX_PER_COLUMN])
    jobs = [job, *children]
    _add_training(
        lineage, [*_ancestors(job), *jobs], _results_of([j.pk for j in jobs]), focus=f"job:{job.pk}"
    )
    return lineage


def for_result(result: EvalResult) -> Lineage:
    """This score ← model ← job ← config + data sets (and the jobs its base model came from)."""
    lineage = Lineage()
    if result.trained_by_job_id is None:
        lineage.add(_result_node(result, focus=True))
        lineage.results.append(result)
        return lineage
    job = _job_query().get(pk=result.trained_by_job_id)
    results = [result, *[r for r in _results_of([job.pk]) if r.pk != result.pk]]
    _add_training(lineage, [*_ancestors(job), job], results, focus=f"result:{result.pk}")
    return lineage


def for_dataset(dataset: Dataset) -> Lineage:
    """This data set → every job, model and score that used it (and what it was derived from / into)."""
    lineage = Lineage()
    lineage.add(_dataset_node(dataset, focus=True))
    lineage.datasets.append(dataset)
    # Jobs by id from the uses (no DISTINCT over whole job rows: that sorts every use before the limit).
    used = JobDataset.objects.filter(dataset=dataset).values("job_id")
    jobs = list(_job_query().filter(pk__in=used).order_by("-created_at")[:MAX_PER_COLUMN])
    total = JobDataset.objects.filter(dataset=dataset).values("job").distinct().count()
    if total > len(jobs):
        lineage.more["job"] = total - len(jobs)
    _add_training(lineage, jobs, _results_of([j.pk for j in jobs]), focus=f"dataset:{dataset.pk}")
    return lineage
