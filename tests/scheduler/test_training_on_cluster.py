"""Training jobs end to end on the dev cluster: the real `training.sft`, `.dpo` and `.evaluate` run on CPU
on its nodes, submitted through the API, staged and tracked by the worker."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from demo import assets as demo_assets
from scheduler.models import Cluster, Job, Pipeline
from tests.judge import JudgeServer
from tests.personas import Team
from tests.scheduler.conftest import JUDGE_NAME

pytestmark = pytest.mark.training

TERMINAL = {state.value for state in Job.State if state.value in Job.TERMINAL_STATES}


def sft_fields(assets: demo_assets.Assets, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "model": assets.model,
        "train_files": [assets.sft_data],
        "learning_rate": 5e-3,
        "max_steps": 6,
        "micro_batch_size": 4,
        "global_batch_size": 8,
        "max_length": 64,
        "dtype": "fp32",
        "use_cpu": True,
        "wandb_mode": "offline",
        "save_steps": 1000,
        "extra_yaml": "training:\n  logging_steps: 1\n",
    }
    fields.update(overrides)
    return fields


def api(team: Team, role: str = "member") -> APIClient:
    client = APIClient()
    client.force_authenticate(team.users[role])
    return client


def finished(*jobs: Job) -> Callable[[], bool]:
    def check() -> bool:
        for job in jobs:
            job.refresh_from_db()
        return all(job.state in TERMINAL for job in jobs)

    return check


def describe(job: Job) -> str:
    from scheduler import logs

    return (
        f"{job.name}: {job.state} exit={job.exit_code} reason={job.reason!r}\n"
        f"stdout:\n{logs.tail(job, 'stdout', 20)}\nstderr:\n{logs.tail(job, 'stderr', 30)}"
    )


def test_sft_job_from_the_api_runs_training_sft_on_a_node_and_leaves_its_wandb_run(
    team: Team, training_cluster: Cluster, assets: demo_assets.Assets, run_until: Any, remote: Any
) -> None:
    response = api(team).post(
        "/api/v1/jobs/",
        {
            "subteam": "sft",
            "kind": "sft",
            "name": "tiny-sft",
            "nodes": 1,
            "gpus_per_node": 1,
            "time_limit": 10,
            "training": sft_fields(assets),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert job.kind == "sft"
    assert "python -m training.sft --config run.yaml" in job.script
    assert f"export WANDB_RUN_ID={job.id}" in job.script

    run_until(finished(job), timeout=240, interval=1.0)
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED, describe(job)
    assert job.node_list.startswith("node")

    # The config the worker staged is the one the portal showed, and the run went through it.
    assert remote.for_job(job).read(job.config_path).decode() == job.config_yaml
    summary = json.loads(remote.for_job(job).read(f"{job.output_dir}/run_summary.json"))
    assert summary["kind"] == "sft" and summary["status"] == "completed"
    assert summary["global_step"] == 6
    assert summary["last_loss"] < summary["first_loss"]
    # W&B offline run named after the job's UUID, under the job's run directory.
    runs = remote.for_job(job).conn.listdir(f"{job.run_dir}/wandb")
    run_dirs = [name for name, _size, is_dir in runs if is_dir and name.endswith(str(job.id))]
    assert run_dirs and run_dirs[0].startswith("offline-run-"), runs
    files = dict(
        (name, size)
        for name, size, _ in remote.for_job(job).conn.listdir(f"{job.run_dir}/wandb/{run_dirs[0]}")
    )
    assert files.get(f"run-{job.id}.wandb", 0) > 0, files


def test_sft_dpo_eval_pipeline_runs_in_order_each_step_reading_the_previous_output(
    team: Team,
    training_cluster: Cluster,
    assets: demo_assets.Assets,
    judge: JudgeServer,
    run_until: Any,
    remote: Any,
) -> None:
    common = {"nodes": 1, "gpus_per_node": 1, "time_limit": 15}
    response = api(team).post(
        "/api/v1/pipelines/",
        {
            "subteam": "sft",
            "name": "tiny-chain",
            "steps": [
                {"kind": "sft", **common, "training": sft_fields(assets, lora=True, lora_r=4, lora_alpha=8)},
                {
                    "kind": "dpo",
                    **common,
                    "training": {
                        "train_files": [assets.dpo_data],
                        "learning_rate": 1e-3,
                        "max_steps": 4,
                        "micro_batch_size": 2,
                        "max_length": 64,
                        "dtype": "fp32",
                        "use_cpu": True,
                        "lora": True,
                        "lora_r": 4,
                        "lora_alpha": 8,
                        "wandb_mode": "offline",
                    },
                },
                {
                    "kind": "eval",
                    **common,
                    "training": {
                        "questions": assets.questions,
                        "judge_model": "judge-x",
                        "judge_endpoint": JUDGE_NAME,
                        "max_new_tokens": 8,
                        "dtype": "fp32",
                        "use_cpu": True,
                        "wandb_mode": "offline",
                    },
                },
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    pipeline = Pipeline.objects.get(pk=response.json()["id"])
    sft, dpo, evaluation = pipeline.steps()
    assert [j.kind for j in (sft, dpo, evaluation)] == ["sft", "dpo", "eval"]
    assert dpo.depends_on == sft and evaluation.depends_on == dpo
    assert dpo.parameters["config"]["model"]["name_or_path"] == sft.output_dir
    assert evaluation.parameters["config"]["model"]["name_or_path"] == dpo.output_dir

    run_until(finished(sft, dpo, evaluation), timeout=420, interval=1.0)
    for job in (sft, dpo, evaluation):
        assert job.state == Job.State.COMPLETED, describe(job)
    # In order: each started after the one before ended.
    assert sft.ended_at and dpo.started_at and dpo.ended_at and evaluation.started_at
    assert sft.ended_at <= dpo.started_at and dpo.ended_at <= evaluation.started_at
    summary = json.loads(remote.for_job(evaluation).read(f"{evaluation.output_dir}/summary.json"))
    # The local judge rates every answer 5: one judgment per turn (8 questions, 10 turns), 8 categories.
    assert summary["counts"]["judgments"] == 10 and summary["counts"]["scored"] == 10
    assert summary["average"] == 5.0
    assert summary["category_averages"] == dict.fromkeys(
        ["coding", "extraction", "humanities", "math", "reasoning", "roleplay", "stem", "writing"], 5.0
    )
    assert summary["judge"]["model"] == "judge-x"
    assert len(judge.requests) == 10
    assert Pipeline.progress(pipeline.steps()) == ("completed", None)


def test_a_first_step_refused_by_the_preflight_cancels_the_rest_of_the_pipeline(
    team: Team, training_cluster: Cluster, assets: demo_assets.Assets, run_until: Any
) -> None:
    common = {"nodes": 1, "gpus_per_node": 1, "time_limit": 10}
    missing = f"{assets.root}/data/missing.jsonl"
    response = api(team).post(
        "/api/v1/pipelines/",
        {
            "subteam": "sft",
            "name": "doomed-chain",
            "steps": [
                {"kind": "sft", **common, "training": sft_fields(assets, train_files=[missing])},
                {
                    "kind": "dpo",
                    **common,
                    "training": {"train_files": [assets.dpo_data], "dtype": "fp32", "use_cpu": True},
                },
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    pipeline = Pipeline.objects.get(pk=response.json()["id"])
    sft, dpo = pipeline.steps()
    run_until(finished(sft, dpo), timeout=180, interval=1.0)
    assert sft.state == Job.State.FAILED, describe(sft)
    # The preflight (over the member's own SFTP) found the missing file before anything reached Slurm.
    assert sft.slurm_job_id == "" and sft.exit_code is None
    assert sft.reason == f"preflight: data.train_files[0]: {missing} does not exist"
    assert sft.diagnosis is not None and sft.diagnosis["code"] == "preflight"
    assert dpo.state == Job.State.CANCELLED
    assert dpo.started_at is None
    state, at = Pipeline.progress(pipeline.steps())
    assert state == "stopped" and at == sft
