"""An eval job on the real dev cluster: when it completes, the worker's cluster hook reads its output
over SFTP and records the result, which moves the goal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from evals import collect
from evals.models import EvalResult
from portal.models import Goal
from scheduler import services as scheduler_services
from scheduler.models import Cluster, Job
from tests.evals.conftest import JUDGMENTS_A, QUESTIONS_JSONL, jsonl, judgment_rows, summary_for
from tests.personas import Team
from tests.scheduler.conftest import (  # noqa: F401 - fixtures of the dev cluster
    Remote,
    devcluster_info,
    remote,
    run_until,
    worker,
)
from tests.scheduler.conftest import cluster as dev_cluster  # noqa: F401


@pytest.fixture(autouse=True)
def fresh_attempts() -> Iterator[None]:
    collect._attempts.clear()
    yield
    collect._attempts.clear()


@pytest.fixture
def cleanup(remote: Remote) -> Iterator[list[str]]:  # noqa: F811
    run_dirs: list[str] = []
    yield run_dirs
    for path in run_dirs:
        remote.as_user("tk-member").run("rm", "-rf", path)  # the member's own run directories


def submit_eval(team: Team, cluster: Cluster, command: str) -> Job:
    spec = scheduler_services.JobSpec(
        subteam=team.sft,
        cluster=cluster,
        name="eval-collect",
        command=command,
        gpus_per_node=1,
        time_limit_minutes=5,
    )
    job = scheduler_services.submit_job(team.member("member"), spec)
    Job.objects.filter(pk=job.pk).update(kind=Job.Kind.EVAL)
    return Job.objects.select_related("cluster").get(pk=job.pk)


def stage(host: Remote, job: Job, summary: dict[str, Any], judgments: bytes) -> None:
    """The files training/evaluate.py leaves, staged where the job's command copies them from."""
    staged = f"{job.run_dir}/staged"
    host.conn.write_file(f"{staged}/summary.json", json.dumps(summary).encode())
    host.conn.write_file(f"{staged}/gpt-4_single.jsonl", judgments)
    host.conn.write_file(f"{job.run_dir}/data/question.jsonl", QUESTIONS_JSONL)


COPY = (
    "mkdir -p out/model_judgment && cp staged/summary.json out/ && "
    "cp staged/gpt-4_single.jsonl out/model_judgment/"
)


def test_a_completed_eval_job_is_recorded_and_moves_the_goal(
    team: Team,
    dev_cluster: Cluster,  # noqa: F811
    remote: Remote,  # noqa: F811
    run_until: Callable[..., None],  # noqa: F811
    cleanup: list[str],
) -> None:
    goal = Goal.objects.create(
        title="MT-Bench", subteam=team.sft, metric_name="jmt_bench.avg", metric_target=7.8
    )
    job = submit_eval(team, dev_cluster, COPY)
    cleanup.append(job.run_dir)
    summary = summary_for(model="model-a")
    summary["question_set"]["path"] = "data/question.jsonl"  # relative: to the run directory
    stage(remote.for_job(job), job, summary, JUDGMENTS_A)

    run_until(lambda: EvalResult.objects.filter(job=job).exists(), timeout=90)

    result = EvalResult.objects.get(job=job)
    assert (Job.objects.get(pk=job.pk).state, result.model_name, result.average) == (
        "completed",
        "model-a",
        7.91,
    )
    assert result.judgments.count() == 9
    assert result.judgments.get(question_id="5", turn=1).question == "たぬきになって"
    goal.refresh_from_db()
    assert (goal.metric_current, goal.status) == (7.91, Goal.Status.ACHIEVED)
    assert goal.revisions.get().source == f"eval:{result.pk}"


def test_a_job_without_output_is_tried_a_few_times_then_left(
    team: Team,
    dev_cluster: Cluster,  # noqa: F811
    remote: Remote,  # noqa: F811
    run_until: Callable[..., None],  # noqa: F811
    cleanup: list[str],
) -> None:
    job = submit_eval(team, dev_cluster, "true")
    cleanup.append(job.run_dir)
    run_until(lambda: collect._attempts.get(job.pk, 0) >= collect.MAX_ATTEMPTS, timeout=90)
    assert not EvalResult.objects.filter(job=job).exists()
    # Files that appear later are not read by this process any more (bounded work per poll) ...
    as_member = remote.for_job(job)  # only the member may write into their run directory
    stage(as_member, job, summary_for(model="model-a"), jsonl(judgment_rows("model-a", {(1, 1): 8})))
    as_member.run("cp", "-r", f"{job.run_dir}/staged", f"{job.run_dir}/out")
    assert collect.pending_jobs(dev_cluster) == [Job.objects.get(pk=job.pk)]
    # ... but a direct collect records them (what a restart of the worker would do).
    result = collect.collect_job(Job.objects.select_related("cluster").get(pk=job.pk), as_member.conn)
    assert result is not None and result.judgments.count() == 0  # no model_judgment/ in this layout
