"""Training job kinds without a cluster: the checks before anything reaches Slurm, run.yaml and the sbatch
script, the forms (job, pipeline, templates) and the API, with refusals that change nothing."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from rest_framework.test import APIClient

from scheduler import services, training_jobs
from scheduler.models import Cluster, Job, JobTemplate, Pipeline
from scheduler.training_jobs import TrainingRequest
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import RUNS, body, make_fake_cluster

MODEL = "/data/models/llm-jp-3-1.8b"
DATA = "/data/sft/ichikara.jsonl"


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


def sft(**fields: Any) -> TrainingRequest:
    values: dict[str, Any] = {"kind": "sft", "model": MODEL, "train_files": [DATA]}
    values.update(fields)
    return TrainingRequest(**values)


def spec(team: Team, cluster: Cluster, request: TrainingRequest, **fields: Any) -> services.JobSpec:
    values: dict[str, Any] = {
        "subteam": team.sft,
        "cluster": cluster,
        "name": "sft-run",
        "command": "",
        "kind": request.kind,
        "training": request,
        "nodes": 2,
        "gpus_per_node": 8,
    }
    values.update(fields)
    return services.JobSpec(**values)


# --- checks ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        (
            {"global_batch_size": 100, "micro_batch_size": 4},
            "global_batch_size",
            "multiple of micro batch 4 × 16",
        ),
        (
            {"global_batch_size": 128, "micro_batch_size": 4, "gradient_accumulation_steps": 3},
            "gradient_accumulation_steps",
            "not the global batch 128",
        ),
        ({"learning_rate": 0.5}, "learning_rate", "Between"),
        ({"learning_rate": 0.0}, "learning_rate", "Between"),
        ({"lora": True, "lora_r": 0}, "lora_r", "LoRA rank"),
        ({"lora": True, "lora_alpha": 100000}, "lora_alpha", "LoRA alpha"),
        ({"train_files": ["data/sft.jsonl"]}, "train_files", "absolute path"),
        ({"train_files": ["/data/sft.csv"]}, "train_files", ".jsonl"),
        ({"train_files": []}, "train_files", "at least one"),
        ({"model": ""}, "model", "Say which model"),
        ({"model": "/m\nx"}, "model", "Control characters"),
        ({"extra_yaml": "training: {lr: 1}"}, "extra_yaml", "training.lr"),
        ({"extra_yaml": "training: [1"}, "extra_yaml", "Not valid YAML"),
        ({"extra_yaml": "output: {dir: /tmp}"}, "extra_yaml", "set by the portal"),
        ({"extra_yaml": "training: {max_steps: 0}"}, "max_steps", "training.max_steps"),
        ({"wandb_tags": ["ok", "bad tag"]}, "wandb_tags", "bad tag"),
        ({"checkpoint_signal_seconds": 99999}, "checkpoint_signal_seconds", "Between 0"),
    ],
)
def test_bad_training_requests_are_refused_on_the_field_that_is_wrong(
    team: Team, fake_cluster: Cluster, fields: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(services.ValidationError) as caught:
        services.submit_job(team.member("member"), spec(team, fake_cluster, sft(**fields)))
    errors = caught.value.message_dict
    assert field in errors, errors
    assert any(words in message for message in errors[field]), errors
    assert not Job.objects.exists()


def test_the_global_batch_sets_gradient_accumulation() -> None:
    config = training_jobs.build_config(
        sft(micro_batch_size=4, global_batch_size=256), nodes=2, gpus_per_node=8, tags=["sft"]
    )
    assert config["training"]["gradient_accumulation_steps"] == 4  # 256 / (4 × 16)
    assert (
        training_jobs.estimated_tokens(
            sft(max_steps=10, micro_batch_size=4, global_batch_size=256, max_length=2048), 2, 8
        )
        == 10 * 256 * 2048
    )


def test_a_standalone_eval_is_named_after_its_model_directory(team: Team, fake_cluster: Cluster) -> None:
    request = TrainingRequest(kind="eval", model=MODEL + "/", questions="/data/q.jsonl")
    job = services.submit_job(
        team.member("member"), spec(team, fake_cluster, request, nodes=1, gpus_per_node=1)
    )
    assert yaml.safe_load(job.config_yaml)["evaluate"]["model_id"] == "llm-jp-3-1.8b"
    named = TrainingRequest(
        kind="eval", model=MODEL, questions="/data/q.jsonl", extra_yaml="evaluate: {model_id: mine}"
    )
    job = services.submit_job(
        team.member("member"), spec(team, fake_cluster, named, nodes=1, gpus_per_node=1)
    )
    assert yaml.safe_load(job.config_yaml)["evaluate"]["model_id"] == "mine"


def test_an_eval_request_needs_questions(team: Team, fake_cluster: Cluster) -> None:
    request = TrainingRequest(kind="eval", model=MODEL, questions="")
    with pytest.raises(services.ValidationError) as caught:
        services.validate_spec(spec(team, fake_cluster, request, nodes=1, gpus_per_node=1))
    assert "questions" in caught.value.message_dict


# --- run.yaml and script --------------------------------------------------------------------------------


def test_an_sft_job_gets_run_yaml_and_an_srun_script_with_signal_requeue_and_wandb(
    team: Team, fake_cluster: Cluster
) -> None:
    request = sft(
        lora=True,
        lora_r=64,
        lora_alpha=128,
        micro_batch_size=2,
        global_batch_size=64,
        wandb_project="tanuki-sft",
        wandb_tags=["exp1"],
    )
    job = services.submit_job(team.member("member"), spec(team, fake_cluster, request))
    config = yaml.safe_load(job.config_yaml)
    assert config["kind"] == "sft" and config["output"] == {"dir": "out"}
    assert config["model"]["name_or_path"] == MODEL
    assert config["lora"] == {"enabled": True, "r": 64, "alpha": 128, "dropout": 0.05}
    assert config["training"]["gradient_accumulation_steps"] == 2
    assert config["wandb"]["tags"] == ["sft", "sft", "exp1"] and config["wandb"]["project"] == "tanuki-sft"
    assert config["checkpoint"]["requeue_on_signal"] is True
    script = job.script
    assert "#SBATCH --ntasks-per-node=8" in script
    assert "#SBATCH --signal=USR1@300" in script
    assert "#SBATCH --requeue" in script
    assert "#SBATCH --gres=gpu:8" in script and "#SBATCH --nodes=2" in script
    assert f"export WANDB_RUN_ID={job.id}" in script
    assert "export WANDB__TRANSACTION_LOG_FLUSH_INTERVAL=1" in script
    assert "export WANDB_PROJECT=tanuki-sft" in script
    assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in script
    assert script.rstrip().endswith("srun --kill-on-bad-exit=1 python -m training.sft --config run.yaml")
    assert script.index(f"cd {RUNS}/{job.id}") < script.index("srun")
    assert job.config_path == f"{RUNS}/{job.id}/run.yaml"


def test_torchrun_starts_one_task_per_node_and_leaves_out_the_signal(
    team: Team, fake_cluster: Cluster
) -> None:
    job = services.submit_job(team.member("member"), spec(team, fake_cluster, sft(launcher="torchrun")))
    assert "#SBATCH --ntasks-per-node=1" in job.script
    assert "--signal" not in job.script
    assert 'torchrun --nnodes="$SLURM_NNODES" --nproc-per-node=8' in job.script
    assert '--rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT"' in job.script
    assert "-m training.sft --config run.yaml" in job.script
    assert yaml.safe_load(job.config_yaml)["checkpoint"]["save_on_signal"] is False


def test_values_reach_yaml_quoted_never_the_shell(team: Team, fake_cluster: Cluster) -> None:
    evil = "/data/$(touch /tmp/x); rm -rf ~ 'quoted'.jsonl"
    job = services.submit_job(team.member("member"), spec(team, fake_cluster, sft(train_files=[evil])))
    assert evil not in job.script
    assert yaml.safe_load(job.config_yaml)["data"]["train_files"] == [evil]


def test_a_pipeline_chains_the_steps_and_each_reads_the_previous_output(
    team: Team, fake_cluster: Cluster
) -> None:
    dpo = TrainingRequest(kind="dpo", train_files=["/data/dpo.jsonl"])
    evaluate = TrainingRequest(kind="eval", questions="/data/mt_bench/question.jsonl", judge_model="gpt-4o")
    pipeline = services.submit_pipeline(
        team.member("member"),
        "chain",
        [
            spec(team, fake_cluster, sft()),
            spec(team, fake_cluster, dpo, name="chain-dpo"),
            spec(team, fake_cluster, evaluate, name="chain-eval", nodes=1, gpus_per_node=1),
        ],
    )
    first, second, third = pipeline.steps()
    assert (second.depends_on, third.depends_on) == (first, second)
    assert [j.pipeline_step for j in (first, second, third)] == [1, 2, 3]
    assert yaml.safe_load(second.config_yaml)["model"]["name_or_path"] == f"{RUNS}/{first.id}/out"
    assert yaml.safe_load(third.config_yaml)["model"]["name_or_path"] == f"{RUNS}/{second.id}/out"
    assert yaml.safe_load(third.config_yaml)["evaluate"]["model_id"] == "chain-dpo"  # the leaderboard's name
    assert "#SBATCH --kill-on-invalid-dep=yes" in second.script
    assert (
        "srun --ntasks=1 --kill-on-bad-exit=1 python -m training.evaluate --config run.yaml" in third.script
    )
    assert Pipeline.progress(pipeline.steps()) == ("waiting", first)


def test_a_pipeline_with_a_bad_step_records_nothing(team: Team, fake_cluster: Cluster) -> None:
    dpo = TrainingRequest(kind="dpo", train_files=["/data/dpo.jsonl"], dpo_beta=0)
    with pytest.raises(services.ValidationError) as caught:
        services.submit_pipeline(
            team.member("member"), "chain", [spec(team, fake_cluster, sft()), spec(team, fake_cluster, dpo)]
        )
    assert "steps[2].dpo_beta" in caught.value.message_dict
    assert not Job.objects.exists() and not Pipeline.objects.exists()


def test_resubmitting_a_pipeline_step_keeps_the_model_it_read(team: Team, fake_cluster: Cluster) -> None:
    dpo = TrainingRequest(kind="dpo", train_files=["/data/dpo.jsonl"])
    pipeline = services.submit_pipeline(
        team.member("member"), "chain", [spec(team, fake_cluster, sft()), spec(team, fake_cluster, dpo)]
    )
    first, second = pipeline.steps()
    copy = services.resubmit_job(team.member("member"), second)
    assert copy.depends_on is None and copy.kind == "dpo"
    assert yaml.safe_load(copy.config_yaml)["model"]["name_or_path"] == f"{RUNS}/{first.id}/out"


# --- web ------------------------------------------------------------------------------------------------


def form_data(team: Team, cluster: Cluster, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "sft",
        "subteam": team.sft.pk,
        "cluster": cluster.pk,
        "name": "web-sft",
        "nodes": 1,
        "gpus_per_node": 8,
        "time_limit_minutes": 120,
        "model": MODEL,
        "train_files": f"{DATA}\n/data/sft/more.jsonl\n",
        "learning_rate": "1e-5",
        "lr_scheduler_type": "cosine",
        "warmup_ratio": "0.03",
        "num_train_epochs": "2",
        "max_steps": "-1",
        "micro_batch_size": "2",
        "global_batch_size": "64",
        "max_length": "4096",
        "save_steps": "200",
        "lora_r": "16",
        "lora_alpha": "32",
        "lora_dropout": "0.05",
        "dtype": "bf16",
        "launcher": "srun",
        "checkpoint_signal_seconds": "300",
        "requeue": "on",
        "wandb_mode": "offline",
        "wandb_tags": "exp1, ja",
    }
    data.update(fields)
    return data


def test_a_member_previews_then_submits_an_sft_job_from_the_form(team: Team, fake_cluster: Cluster) -> None:
    client = team.client("member")
    page = client.get("/jobs/train/?kind=sft")
    assert page.status_code == 200
    html = body(page)
    assert 'name="global_batch_size"' in html and 'name="lora_r"' in html and 'name="questions"' not in html

    preview = client.post(
        "/jobs/train/preview/", form_data(team, fake_cluster), headers={"hx-request": "true"}
    )
    html = body(preview)
    assert 'data-testid="config-preview"' in html and "gradient_accumulation_steps: 4" in html
    assert "python -m training.sft --config run.yaml" in html
    assert not Job.objects.exists()

    response = client.post("/jobs/train/?kind=sft", form_data(team, fake_cluster))
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == job.get_absolute_url()
    assert job.kind == "sft" and job.owner == team.member("member")
    config = yaml.safe_load(job.config_yaml)
    assert config["data"]["train_files"] == [DATA, "/data/sft/more.jsonl"]
    assert config["wandb"]["tags"][-2:] == ["exp1", "ja"]
    page = body(client.get(job.get_absolute_url()))
    assert "run.yaml" in page and "gradient_accumulation_steps: 4" in page


def test_the_form_shows_the_batch_arithmetic_error_and_records_nothing(
    team: Team, fake_cluster: Cluster
) -> None:
    response = team.client("member").post(
        "/jobs/train/?kind=sft", form_data(team, fake_cluster, global_batch_size="60")
    )
    assert response.status_code == 200
    assert "multiple of micro batch 2 × 8" in body(response)
    assert not Job.objects.exists()


@pytest.mark.parametrize("role", ["other", "anon"])
def test_others_cannot_submit_for_a_subteam_they_are_not_in(
    team: Team, fake_cluster: Cluster, role: str
) -> None:
    response = team.client(role).post("/jobs/train/?kind=sft", form_data(team, fake_cluster))
    assert response.status_code in (302, 403)
    if role == "anon":
        assert "/accounts/login/" in response["Location"]
    assert not Job.objects.exists()


def pipeline_data(team: Team, cluster: Cluster) -> dict[str, Any]:
    data: dict[str, Any] = {
        "subteam": team.sft.pk,
        "cluster": cluster.pk,
        "name": "webchain",
        "include_dpo": "on",
        "include_eval": "on",
    }
    for key, value in form_data(team, cluster).items():
        if key not in ("kind", "subteam", "cluster", "name"):
            data[f"sft-{key}"] = value
            data[f"dpo-{key}"] = value
    data["dpo-model"] = ""
    data["dpo-train_files"] = "/data/dpo.jsonl"
    data["dpo-dpo_beta"] = "0.1"
    for key in ("nodes", "time_limit_minutes", "dtype", "wandb_mode"):
        data[f"eval-{key}"] = form_data(team, cluster)[key]
    data.update(
        {
            "eval-gpus_per_node": 1,
            "eval-questions": "/data/mt_bench/question.jsonl",
            "eval-judge_model": "gpt-4o",
            "eval-max_new_tokens": 1024,
        }
    )
    return data


def test_the_pipeline_form_submits_three_chained_steps_and_the_page_shows_them(
    team: Team, fake_cluster: Cluster
) -> None:
    client = team.client("member")
    assert client.get("/pipelines/new/").status_code == 200
    response = client.post("/pipelines/new/", pipeline_data(team, fake_cluster))
    pipeline = Pipeline.objects.get()
    assert response.status_code == 302 and response["Location"] == pipeline.get_absolute_url()
    steps = pipeline.steps()
    assert [j.kind for j in steps] == ["sft", "dpo", "eval"]
    assert yaml.safe_load(steps[2].config_yaml)["model"]["name_or_path"] == steps[1].output_dir
    html = body(client.get(pipeline.get_absolute_url()))
    assert 'data-state="waiting"' in html and 'hx-trigger="every 3s"' in html
    # The first step fails: the page says where the pipeline stopped and stops polling.
    Job.objects.filter(pk=steps[0].pk).update(state=Job.State.FAILED, exit_code=1)
    Job.objects.filter(pk__in=[steps[1].pk, steps[2].pk]).update(state=Job.State.CANCELLED)
    html = body(client.get(pipeline.get_absolute_url()))
    assert 'data-state="stopped"' in html and "hx-trigger" not in html
    assert "webchain-sft" in html
    assert "webchain" in body(client.get("/pipelines/"))


def test_a_pipeline_step_error_is_shown_on_that_step(team: Team, fake_cluster: Cluster) -> None:
    data = pipeline_data(team, fake_cluster)
    data["dpo-learning_rate"] = "5"
    response = team.client("member").post("/pipelines/new/", data)
    assert response.status_code == 200
    assert "check this step" in body(response)
    assert not Pipeline.objects.exists() and not Job.objects.exists()


def test_templates_are_saved_per_subteam_reused_and_deleted_by_their_author_or_leads(
    team: Team, fake_cluster: Cluster
) -> None:
    member = team.client("member")
    data = form_data(
        team, fake_cluster, template_name="8xH100 SFT", template_description="our default", save_template="1"
    )
    response = member.post("/jobs/train/?kind=sft", data)
    template = JobTemplate.objects.get()
    assert response.status_code == 302 and f"template={template.pk}" in response["Location"]
    assert (template.subteam, template.kind, template.created_by) == (team.sft, "sft", team.member("member"))
    assert template.fields["learning_rate"] == "1e-5" and "csrfmiddlewaretoken" not in template.fields
    assert "name" not in template.fields  # a new run gets a name of its own
    assert template.fields["requeue"] == "on" and template.fields["lora"] == ""  # unticked stays unticked
    assert not Job.objects.exists()

    html = body(member.get(f"/jobs/train/?kind=sft&template={template.pk}"))
    assert 'value="1e-5"' in html and "8xH100 SFT" in html
    assert '<input type="checkbox" name="requeue" value="on" id="id_requeue" checked>' in html
    assert '<input type="checkbox" name="lora" id="id_lora">' in html

    # Another subteam neither sees nor deletes it.
    assert team.client("other").get(f"/jobs/train/?kind=sft&template={template.pk}").status_code == 403
    assert team.client("other").post(f"/jobs/templates/{template.pk}/delete/").status_code == 403
    assert JobTemplate.objects.exists()
    assert team.client("lead").post(f"/jobs/templates/{template.pk}/delete/").status_code == 302
    assert not JobTemplate.objects.exists()


def test_a_member_cannot_save_a_template_for_another_subteam(team: Team, fake_cluster: Cluster) -> None:
    data = form_data(team, fake_cluster, subteam=team.pretrain.pk, template_name="x", save_template="1")
    assert team.client("member").post("/jobs/train/?kind=sft", data).status_code == 403
    assert not JobTemplate.objects.exists()


# --- API ------------------------------------------------------------------------------------------------


def api(team: Team, role: str = "member") -> APIClient:
    client = APIClient()
    if role != "anon":
        client.force_authenticate(team.users[role])
    return client


def api_job(**training: Any) -> dict[str, Any]:
    return {
        "subteam": "sft",
        "kind": "sft",
        "nodes": 2,
        "gpus_per_node": 8,
        "time_limit": 600,
        "training": {"model": MODEL, "train_files": [DATA], **training},
    }


def test_the_api_submits_a_training_job_and_returns_its_config(team: Team, fake_cluster: Cluster) -> None:
    response = api(team).post(
        "/api/v1/jobs/", api_job(global_batch_size=256, micro_batch_size=4), format="json"
    )
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    detail = api(team).get(f"/api/v1/jobs/{job.pk}/").json()
    assert yaml.safe_load(detail["config_yaml"])["training"]["gradient_accumulation_steps"] == 4
    assert detail["parameters"]["training"]["global_batch_size"] == 256


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        (api_job(learning_rate=3.0), ("training", "learning_rate")),
        (api_job(global_batch_size=100, micro_batch_size=4), ("training", "global_batch_size")),
        ({**api_job(), "training": None}, ("training",)),
        ({"subteam": "sft", "kind": "sft", "command": "echo"}, ("training",)),
        (
            {"subteam": "sft", "kind": "custom", "command": "echo", "training": {"model": MODEL}},
            ("training",),
        ),
        ({"subteam": "sft", "kind": "custom"}, ("command",)),
    ],
)
def test_bad_api_requests_get_400_naming_the_field(
    team: Team, fake_cluster: Cluster, payload: dict[str, Any], path: tuple[str, ...]
) -> None:
    response = api(team).post("/api/v1/jobs/", payload, format="json")
    assert response.status_code == 400, response.content
    errors: Any = response.json()
    for key in path:
        assert key in errors, errors
        errors = errors[key]
    assert not Job.objects.exists()


def test_the_pipeline_api_nests_a_step_error_under_its_index(team: Team, fake_cluster: Cluster) -> None:
    response = api(team).post(
        "/api/v1/pipelines/",
        {
            "subteam": "sft",
            "name": "p",
            "steps": [
                {"kind": "sft", "training": {"model": MODEL, "train_files": [DATA]}},
                {"kind": "dpo", "training": {"train_files": ["/data/dpo.jsonl"], "lora": True, "lora_r": 0}},
            ],
        },
        format="json",
    )
    assert response.status_code == 400
    assert "lora_r" in response.json()["steps"][1]["training"]
    assert not Pipeline.objects.exists() and not Job.objects.exists()


def test_the_pipeline_api_refuses_another_subteam_and_anonymous(team: Team, fake_cluster: Cluster) -> None:
    payload = {
        "subteam": "sft",
        "name": "p",
        "steps": [{"kind": "sft", "training": {"model": MODEL, "train_files": [DATA]}}],
    }
    assert api(team, "other").post("/api/v1/pipelines/", payload, format="json").status_code == 403
    assert api(team, "anon").post("/api/v1/pipelines/", payload, format="json").status_code in (401, 403)
    assert not Pipeline.objects.exists() and not Job.objects.exists()
    response = api(team).post("/api/v1/pipelines/", payload, format="json")
    assert response.status_code == 201 and response.json()["state"] == "waiting"
    listed = api(team, "other").get("/api/v1/pipelines/?subteam=sft").json()
    assert [p["name"] for p in listed["results"]] == ["p"]


def test_job_templates_over_the_api(team: Team, fake_cluster: Cluster) -> None:
    payload = {"name": "t", "subteam": "sft", "kind": "sft", "fields": {"learning_rate": "1e-5"}}
    assert api(team, "other").post("/api/v1/job-templates/", payload, format="json").status_code == 403
    created = api(team).post("/api/v1/job-templates/", payload, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert api(team, "other").delete(f"/api/v1/job-templates/{pk}/").status_code == 403
    assert JobTemplate.objects.filter(pk=pk).exists()
    assert api(team, "admin").delete(f"/api/v1/job-templates/{pk}/").status_code == 204
    assert not JobTemplate.objects.exists()
