"""A corpus of hostile values through every field of the job API that reaches a file or the cluster.

Each value goes into one field of an otherwise valid request (a custom job, a chain, each training kind,
a pipeline step, a template): the answer is a 400 that names that field, small, and nothing is recorded
(no Job, Pipeline or JobTemplate row).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from scheduler.models import Cluster, Job, JobTemplate, JudgeEndpoint, Pipeline
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster

MODEL = "/data/models/llm-jp-3-1.8b"
DATA = "/data/sft/ichikara.jsonl"
QUESTIONS = "/data/mt_bench/question.jsonl"

BILLION_LAUGHS = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
    "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "training: {seed: *e}\n"
)
BIG = "x" * 100_000
NUL = "a\x00b"
CONTROL = "a\x1b[31mb"
BIDI = "safe\u202egnp.exe"
ISOLATE = "a\u2066b\u2069"
# Text any text field refuses (a path, a name, a tag, a shell line alike).
TEXT_HOSTILE = {"100 kB": BIG, "NUL": NUL, "ESC": CONTROL, "RLO": BIDI, "isolate": ISOLATE}
# Paths out of bounds, for the path fields.
PATH_HOSTILE = {
    **TEXT_HOSTILE,
    "dotdot": "/data/../etc/passwd.jsonl",
    "relative dotdot": "../../other-user/model",
    "tilde": "~other/model",
    "newline": "/data/a.jsonl\n/etc/shadow.jsonl",
}
# Names that go to Slurm: shell syntax and the rest.
NAME_HOSTILE = {
    **TEXT_HOSTILE,
    "command substitution": "$(rm -rf ~)",
    "backticks": "`id`",
    "semicolon": "x;reboot",
    "slash": "../x",
}
# extra_yaml (run.yaml merged over the fields).
YAML_HOSTILE = {
    "billion laughs": BILLION_LAUGHS,
    "alias": "training: &t {seed: 1}\nlora: *t\n",
    "anchor alone": "training: &t {seed: 1}\n",
    "too deep": "training: " + "[" * 50 + "]" * 50,
    "over 16 KiB": "training:\n" + "".join(f"  # {i:05d} {'x' * 50}\n" for i in range(400)),
    "python tag": "training: !!python/object/apply:os.system ['id']\n",
    "huge integer": "training: {seed: " + "9" * 5000 + "}\n",
    "absolute output": "wandb: {dir: /home/other/wandb}\n",
    "dotdot wandb": "wandb: {dir: ../../x}\n",
    "dotdot model": "model: {name_or_path: ../../../other/model}\n",
    "dotdot data": "data: {train_files: [/data/../etc/x.jsonl]}\n",
    "relative data": "data: {eval_files: [x.jsonl]}\n",
    "resume outside": "checkpoint: {resume: /home/other/run/out/checkpoint-100/../../..}\n",
    "tokenizer dotdot": "tokenizer: {name_or_path: /models/../../root}\n",
    "chat template dotdot": "tokenizer: {chat_template: ../../../etc/passwd}\n",
    "trust remote code": "model: {trust_remote_code: true}\n",
    "NUL in value": 'training: {lr_scheduler_type: "co\\0sine"}\n',
    "bidi in value": 'wandb: {name: "a\u202eb"}\n',
    "control in key": 'training: {"se\\x1bed": 1}\n',
}
EVAL_YAML_HOSTILE = {
    "model_id with slash": "evaluate: {model_id: ../../../tmp/x}\n",
    "model_id dotdot": "evaluate: {model_id: ..}\n",
    "prompts outside": "evaluate: {judge: {prompts_file: ../../../other/prompts.jsonl}}\n",
    "reference dotdot": "evaluate: {reference_answers: /data/../../x.jsonl}\n",
    "questions relative": "evaluate: {questions: q.jsonl}\n",
}


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    JudgeEndpoint.objects.create(name="judge", base_url="http://127.0.0.1:9/v1")
    return cluster


def api(team: Team) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    client.force_authenticate(team.users["member"])
    return client


def custom(**fields: Any) -> dict[str, Any]:
    return {"subteam": "sft", "kind": "custom", "name": "job", "command": "python train.py", **fields}


def training(kind: str = "sft", **fields: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"model": MODEL}
    if kind == "eval":
        values |= {"questions": QUESTIONS, "judge_endpoint": "judge"}
    else:
        values["train_files"] = [DATA]
    return {"subteam": "sft", "kind": kind, "nodes": 1, "gpus_per_node": 1, "training": {**values, **fields}}


def pipeline(**sft_fields: Any) -> dict[str, Any]:
    return {
        "subteam": "sft",
        "name": "p",
        "steps": [
            {"kind": "sft", "training": {"model": MODEL, "train_files": [DATA], **sft_fields}},
            {"kind": "eval", "training": {"questions": QUESTIONS, "judge_endpoint": "judge"}},
        ],
    }


def refused(team: Team, url: str, data: dict[str, Any], *path: str | int) -> dict[str, Any]:
    """POST; assert a small 400 naming the field at `path`, and no row recorded."""
    response = api(team).post(url, data, format="json")
    assert response.status_code == 400, (response.status_code, response.content[:500])
    assert len(response.content) < 4000, len(response.content)
    errors: Any = response.json()
    for key in path:
        # A list item's errors: a list (from validate()) or, from DRF's field checks, {"index": …}.
        if isinstance(key, int) and isinstance(errors, dict):
            key = str(key)
        assert key in errors if isinstance(key, str) else len(errors) > key, (path, errors)
        errors = errors[key]
    assert errors, (path, response.json())
    assert not Job.objects.exists() and not Pipeline.objects.exists() and not JobTemplate.objects.exists()
    return response.json()  # type: ignore[no-any-return]


def test_the_valid_requests_of_this_corpus_are_accepted(team: Team, fake_cluster: Cluster) -> None:
    """The baseline each hostile request differs from in one field only."""
    for url, data in [
        ("/api/v1/jobs/", custom()),
        ("/api/v1/jobs/", custom(then=[{"command": "echo next"}])),
        ("/api/v1/jobs/", training("sft", extra_yaml="training: {seed: 1}\n")),
        ("/api/v1/jobs/", training("pretrain")),
        ("/api/v1/jobs/", training("dpo")),
        ("/api/v1/jobs/", training("eval", extra_yaml="evaluate: {model_id: mine}\n")),
        ("/api/v1/pipelines/", pipeline()),
        (
            "/api/v1/job-templates/",
            {"name": "t", "subteam": "sft", "kind": "sft", "fields": {"model": MODEL}},
        ),
    ]:
        response = api(team).post(url, data, format="json")
        assert response.status_code == 201, (url, response.content[:500])


# --- custom jobs and chains --------------------------------------------------------------------------


@pytest.mark.parametrize("value", NAME_HOSTILE.values(), ids=NAME_HOSTILE.keys())
@pytest.mark.parametrize("field", ["name", "partition", "account"])
def test_custom_job_names_partitions_and_accounts(
    team: Team, fake_cluster: Cluster, field: str, value: str
) -> None:
    refused(team, "/api/v1/jobs/", custom(**{field: value}), field)


@pytest.mark.parametrize(
    "value", [NUL, CONTROL, BIDI, ISOLATE, "x" * 70_000], ids=["NUL", "ESC", "RLO", "isolate", "70 kB"]
)
def test_custom_job_commands(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/jobs/", custom(command=f"echo {value}"), "command")


@pytest.mark.parametrize("value", [NUL, CONTROL, BIDI], ids=["NUL", "ESC", "RLO"])
def test_a_later_steps_command(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/jobs/", custom(then=[{"command": f"echo {value}"}]), "then", 0, "command")


@pytest.mark.parametrize("value", NAME_HOSTILE.values(), ids=NAME_HOSTILE.keys())
def test_a_later_steps_name(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/jobs/", custom(then=[{"command": "echo", "name": value}]), "then", 0, "name")


def test_a_multi_line_command_with_tabs_and_crlf_is_fine(team: Team, fake_cluster: Cluster) -> None:
    response = api(team).post(
        "/api/v1/jobs/", custom(command="set -e\r\n\techo $(hostname) `id`\n"), format="json"
    )
    assert response.status_code == 201, response.content


# --- training fields ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sft", "pretrain", "dpo", "eval"])
@pytest.mark.parametrize("value", PATH_HOSTILE.values(), ids=PATH_HOSTILE.keys())
def test_the_model(team: Team, fake_cluster: Cluster, kind: str, value: str) -> None:
    refused(team, "/api/v1/jobs/", training(kind, model=value), "training", "model")


@pytest.mark.parametrize("field", ["train_files", "eval_files"])
@pytest.mark.parametrize("value", PATH_HOSTILE.values(), ids=PATH_HOSTILE.keys())
def test_data_files(team: Team, fake_cluster: Cluster, field: str, value: str) -> None:
    refused(team, "/api/v1/jobs/", training("sft", **{field: [value]}), "training", field)


def test_too_many_data_files(team: Team, fake_cluster: Cluster) -> None:
    files = [f"/data/{i}.jsonl" for i in range(500)]
    refused(team, "/api/v1/jobs/", training("sft", train_files=files), "training", "train_files")


@pytest.mark.parametrize("value", PATH_HOSTILE.values(), ids=PATH_HOSTILE.keys())
def test_the_questions_path(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/jobs/", training("eval", questions=value), "training", "questions")


@pytest.mark.parametrize("field", ["judge_model", "judge_endpoint"])
@pytest.mark.parametrize("value", TEXT_HOSTILE.values(), ids=TEXT_HOSTILE.keys())
def test_the_judge(team: Team, fake_cluster: Cluster, field: str, value: str) -> None:
    refused(team, "/api/v1/jobs/", training("eval", **{field: value}), "training", field)


@pytest.mark.parametrize("value", NAME_HOSTILE.values(), ids=NAME_HOSTILE.keys())
def test_the_wandb_project_and_tags(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/jobs/", training("sft", wandb_project=value), "training", "wandb_project")
    refused(team, "/api/v1/jobs/", training("sft", wandb_tags=["ok", value]), "training", "wandb_tags")


@pytest.mark.parametrize("kind", ["sft", "eval"])
@pytest.mark.parametrize("value", YAML_HOSTILE.values(), ids=YAML_HOSTILE.keys())
def test_extra_yaml(team: Team, fake_cluster: Cluster, kind: str, value: str) -> None:
    refused(team, "/api/v1/jobs/", training(kind, extra_yaml=value), "training", "extra_yaml")


@pytest.mark.parametrize("value", EVAL_YAML_HOSTILE.values(), ids=EVAL_YAML_HOSTILE.keys())
def test_extra_yaml_of_an_evaluation(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/jobs/", training("eval", extra_yaml=value), "training", "extra_yaml")


@pytest.mark.parametrize("value", TEXT_HOSTILE.values(), ids=TEXT_HOSTILE.keys())
def test_extra_yaml_as_text(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/jobs/", training("sft", extra_yaml=f"# {value}\n"), "training", "extra_yaml")


def test_the_billion_laughs_answer_is_small_and_says_why(team: Team, fake_cluster: Cluster) -> None:
    assert len(json.dumps(training("sft", extra_yaml=BILLION_LAUGHS))) < 600
    errors = refused(
        team, "/api/v1/jobs/", training("sft", extra_yaml=BILLION_LAUGHS), "training", "extra_yaml"
    )
    assert errors["training"]["extra_yaml"] == ["YAML anchors and aliases are not allowed."]


# --- pipelines --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", NAME_HOSTILE.values(), ids=NAME_HOSTILE.keys())
def test_pipeline_names(team: Team, fake_cluster: Cluster, value: str) -> None:
    refused(team, "/api/v1/pipelines/", {**pipeline(), "name": value}, "name")


@pytest.mark.parametrize("value", NAME_HOSTILE.values(), ids=NAME_HOSTILE.keys())
def test_pipeline_step_names(team: Team, fake_cluster: Cluster, value: str) -> None:
    data = pipeline()
    data["steps"][1]["name"] = value
    refused(team, "/api/v1/pipelines/", data, "steps", 1, "name")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", "/data/../x"),
        ("model", BIDI),
        ("train_files", ["/data/../etc/x.jsonl"]),
        ("extra_yaml", BILLION_LAUGHS),
        ("extra_yaml", "wandb: {dir: /tmp/elsewhere}\n"),
        ("wandb_project", "$(id)"),
        ("judge_model", BIG),
    ],
)
def test_pipeline_step_training_fields(team: Team, fake_cluster: Cluster, field: str, value: Any) -> None:
    refused(team, "/api/v1/pipelines/", pipeline(**{field: value}), "steps", 0, "training", field)


# --- templates --------------------------------------------------------------------------------------------


def template(**fields: Any) -> dict[str, Any]:
    return {"name": "t", "subteam": "sft", "kind": "sft", "description": "", "fields": {}, **fields}


@pytest.mark.parametrize("field", ["name", "description"])
@pytest.mark.parametrize(
    "value", [NUL, CONTROL, BIDI, ISOLATE, BIG], ids=["NUL", "ESC", "RLO", "isolate", "100 kB"]
)
def test_template_names_and_descriptions(team: Team, fake_cluster: Cluster, field: str, value: str) -> None:
    refused(team, "/api/v1/job-templates/", template(**{field: value}), field)


@pytest.mark.parametrize(
    "fields",
    [
        {"judge_model": BIG},
        {"eval-judge_model": "x" * 201},
        {"model": BIDI},
        {"sft-model": "x" * 1001},
        {"extra_yaml": "x" * 20_000},
        {"command": "echo \x1b[2J"},
        {"wandb_project": NUL},
        {"anything": CONTROL},
        {"bad key; rm -rf": "1"},
        {"x" * 101: "1"},
        {"model": {"nested": "mapping"}},
        {f"f{i}": "1" for i in range(300)},
    ],
    ids=lambda fields: next(iter(fields))[:20],
)
def test_template_fields(team: Team, fake_cluster: Cluster, fields: dict[str, Any]) -> None:
    refused(team, "/api/v1/job-templates/", template(fields=fields), "fields")


def test_template_fields_keep_multi_line_text(team: Team, fake_cluster: Cluster) -> None:
    fields = {"extra_yaml": "training:\r\n\tseed: 1\n", "train_files": "/a.jsonl\r\n/b.jsonl", "lora": True}
    response = api(team).post("/api/v1/job-templates/", template(fields=fields), format="json")
    assert response.status_code == 201, response.content
    assert JobTemplate.objects.get().fields == fields
