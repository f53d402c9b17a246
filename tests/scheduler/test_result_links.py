"""An evaluation job's page and its pipeline's page show the job's MT-Bench average and link its result
(the reverse one-to-one `job.eval_result`, loaded with the job: no query per step).

No cluster: a Cluster row nobody reaches, and jobs stored as the worker would have left them.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evals.models import EvalResult
from scheduler.models import Cluster, Job, Pipeline
from tests.personas import Team

_serial = itertools.count()


@pytest.fixture
def unreachable_cluster(db: None) -> Cluster:
    return Cluster.objects.create(
        name="fake", host="127.0.0.1", port=1, username="tanuki", work_dir="/scratch/tanuki/runs"
    )


def job(team: Team, cluster: Cluster, kind: str, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "name": f"{kind}-{next(_serial)}",
        "kind": kind,
        "owner": team.member("member"),
        "subteam": team.sft,
        "cluster": cluster,
        "command": "python -m training.run --config run.yaml",
        "script": "#!/bin/bash\n",
        "partition": "gpu",
        "time_limit_minutes": 60,
        "state": Job.State.COMPLETED,
        "slurm_job_id": str(4000 + next(_serial)),
        "logs_final": True,
    }
    values.update(fields)
    return Job.objects.create(**values)


def scored(eval_job: Job, average: float | None) -> EvalResult:
    return EvalResult.objects.create(
        model_name=f"model-{eval_job.name}",
        job=eval_job,
        subteam=eval_job.subteam,
        average=average,
        source=EvalResult.Source.JOB,
    )


def pipeline_with(team: Team, cluster: Cluster, evals: int) -> tuple[Pipeline, list[Job]]:
    """SFT, then `evals` evaluations of its output, in one pipeline."""
    pipeline = Pipeline.objects.create(
        name=f"sft → eval ×{evals}", owner=team.member("member"), subteam=team.sft, cluster=cluster
    )
    job(team, cluster, Job.Kind.SFT, pipeline=pipeline, pipeline_step=1)
    eval_jobs = [
        job(team, cluster, Job.Kind.EVAL, pipeline=pipeline, pipeline_step=2 + i) for i in range(evals)
    ]
    return pipeline, eval_jobs


def result_queries(queries: CaptureQueriesContext) -> list[str]:
    """The queries that read results on their own (not joined to the job that was read)."""
    return [q["sql"] for q in queries.captured_queries if re.search(r'FROM "evals_evalresult"', q["sql"])]


# --- a job's page ----------------------------------------------------------------------------------------


def test_an_eval_jobs_page_shows_its_average_and_links_its_result(
    team: Team, unreachable_cluster: Cluster
) -> None:
    eval_job = job(team, unreachable_cluster, Job.Kind.EVAL)
    result = scored(eval_job, 7.914)
    client = team.client("member")
    with CaptureQueriesContext(connection) as queries:
        body = client.get(f"/jobs/{eval_job.pk}/").content.decode()
    block = body.split('id="eval-result"')[1].split("</section>")[0]
    assert f'data-result="{result.pk}"' in block
    assert '<span class="n">7.91</span>' in block
    assert f'href="{result.get_absolute_url()}"' in block
    assert f'href="/leaderboard/#result-{result.pk}"' in block
    assert f"MT-Bench average of model-{eval_job.name}" in block
    assert result_queries(queries) == []  # read with the job
    htmx = client.get(f"/jobs/{eval_job.pk}/", headers={"HX-Request": "true"}).content.decode()
    assert 'id="eval-result"' in htmx  # inside the live block: it appears once the result is stored


def test_a_job_without_a_result_shows_none_and_asks_nothing_more(
    team: Team, unreachable_cluster: Cluster
) -> None:
    pending = job(team, unreachable_cluster, Job.Kind.EVAL)
    with CaptureQueriesContext(connection) as queries:
        response = team.client("member").get(f"/jobs/{pending.pk}/")
    assert response.status_code == 200
    assert 'id="eval-result"' not in response.content.decode()
    assert result_queries(queries) == []


def test_a_result_without_an_average_shows_a_dash(team: Team, unreachable_cluster: Cluster) -> None:
    eval_job = job(team, unreachable_cluster, Job.Kind.EVAL)
    scored(eval_job, None)
    body = team.client("member").get(f"/jobs/{eval_job.pk}/").content.decode()
    assert '<span class="n">—</span>' in body.split('id="eval-result"')[1]


# --- a pipeline's page -----------------------------------------------------------------------------------


def test_each_eval_step_of_a_pipeline_shows_its_score_and_result(
    team: Team, unreachable_cluster: Cluster
) -> None:
    pipeline, (first, second, unscored) = pipeline_with(team, unreachable_cluster, evals=3)
    results = [scored(first, 6.5), scored(second, 7.25)]
    body = team.client("member").get(f"/pipelines/{pipeline.pk}/").content.decode()
    steps = re.findall(r'<li class="pipeline-step.*?</li>', body, re.S)
    assert len(steps) == 4
    sft_step, *eval_steps = steps
    assert "step-result" not in sft_step
    for step, result, shown in zip(eval_steps, results, ("6.50", "7.25"), strict=False):
        assert f'data-result="{result.pk}"' in step
        assert f"MT-Bench average <strong>{shown}</strong>" in step
        assert f'href="{result.get_absolute_url()}"' in step
    assert "step-result" not in eval_steps[2]
    assert unscored.pk  # stays without a result


def test_a_pipeline_page_runs_the_same_queries_for_1_and_10_scored_steps(
    team: Team, unreachable_cluster: Cluster
) -> None:
    client = team.client("member")
    small, (only,) = pipeline_with(team, unreachable_cluster, evals=1)
    scored(only, 6.0)
    big, many = pipeline_with(team, unreachable_cluster, evals=10)
    for i, eval_job in enumerate(many):
        scored(eval_job, 5.0 + i / 10)
    client.get(f"/pipelines/{small.pk}/")
    with CaptureQueriesContext(connection) as one:
        assert client.get(f"/pipelines/{small.pk}/").status_code == 200
    with CaptureQueriesContext(connection) as ten:
        body = client.get(f"/pipelines/{big.pk}/").content.decode()
    assert body.count('class="step-result"') == 10
    assert len(one) == len(ten), "\n".join(q["sql"][:160] for q in ten.captured_queries)
    assert result_queries(ten) == []
