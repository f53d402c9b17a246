"""Factories for the experiments tests without a cluster: a fake cluster (nobody reaches it), training
requests and finished jobs with results, written as the worker and the eval collector would."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from evals.models import CATEGORIES, EvalResult
from experiments.models import Dataset
from scheduler import services
from scheduler.models import Cluster, Job
from scheduler.training_jobs import TrainingRequest
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster

MODEL = "/data/models/llm-jp-3-1.8b"
DATA = "/data/sft/ichikara.jsonl"
QUESTIONS = "/data/mt-bench/question.jsonl"


def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


def sft(**fields: Any) -> TrainingRequest:
    values: dict[str, Any] = {"kind": "sft", "model": MODEL, "train_files": [DATA], "max_steps": 10}
    values.update(fields)
    return TrainingRequest(**values)


def spec(
    team: Team, cluster: Cluster, request: TrainingRequest | None = None, **fields: Any
) -> services.JobSpec:
    request = request or sft()
    values: dict[str, Any] = {
        "subteam": team.sft,
        "cluster": cluster,
        "name": "sweep",
        "command": "",
        "kind": request.kind,
        "training": request,
        "nodes": 1,
        "gpus_per_node": 1,
        "time_limit_minutes": 60,
    }
    values.update(fields)
    return services.JobSpec(**values)


def eval_spec(team: Team, cluster: Cluster, **fields: Any) -> services.JobSpec:
    request = TrainingRequest(kind="eval", questions=QUESTIONS, judge_endpoint="team-judge")
    return spec(
        team, cluster, request, name="eval", model_from_previous=True, time_limit_minutes=30, **fields
    )


def dataset(
    team: Team, cluster: Cluster, name: str = "ichikara", version: str = "v1", **fields: Any
) -> Dataset:
    values: dict[str, Any] = {
        "subteam": team.sft,
        "cluster": cluster,
        "path": f"/data/sft/{name}-{version}.jsonl",
        "state": Dataset.State.READY,
        "sha256": (name + version).encode().hex().ljust(64, "0")[:64],
        "rows": 1000,
        "size_bytes": 123456,
    }
    values.update(fields)
    return Dataset.objects.create(name=name, version=version, **values)


def finish(job: Job, state: str = Job.State.COMPLETED) -> Job:
    now = timezone.now()
    Job.objects.filter(pk=job.pk).update(state=state, started_at=now, ended_at=now, slurm_job_id="1")
    job.refresh_from_db()
    return job


def result_for(eval_job: Job | None, trained_by: Job | None, average: float, **fields: Any) -> EvalResult:
    scores = {c: average for c in CATEGORIES}
    scores.update({k: v for k, v in fields.items() if k in CATEGORIES})
    return EvalResult.objects.create(
        model_name=(trained_by.name if trained_by else "external"),
        job=eval_job,
        trained_by_job=trained_by,
        subteam=(trained_by.subteam if trained_by else None),
        average=average,
        source=EvalResult.Source.JOB if eval_job else EvalResult.Source.MANUAL,
        **scores,
    )
