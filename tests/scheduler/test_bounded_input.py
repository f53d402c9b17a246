"""Bounded input: the YAML loader, the merged run.yaml's path rules, trust_remote_code per cluster, and the
text rules on the web forms and templates (the API's corpus is test_input_corpus.py)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from scheduler import inputs, services
from scheduler.models import Cluster, Job, JobTemplate
from scheduler.training_jobs import TrainingRequest
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_input_corpus import BILLION_LAUGHS
from tests.scheduler.test_training_jobs import MODEL, form_data, sft, spec
from tests.scheduler.test_web import make_fake_cluster


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


# --- the loader ---------------------------------------------------------------------------------------


def test_the_loader_reads_plain_yaml() -> None:
    assert inputs.load_yaml("training: {seed: 1}\nwandb:\n  tags: [a, b]\n") == {
        "training": {"seed": 1},
        "wandb": {"tags": ["a", "b"]},
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (BILLION_LAUGHS, "YAML anchors and aliases are not allowed."),
        ("a: &x 1\n", "YAML anchors and aliases are not allowed."),
        ("a: [1]\nb: *x\n", "YAML anchors and aliases are not allowed."),
        ("a: " + "[" * 21 + "]" * 21, "nested deeper than 20"),
        ("a: '" + "x" * 16_400 + "'", "longer than 16 KiB"),
        ("a: " + "9" * 5000, "Not valid YAML"),
        ("a: 2024-13-40", "Not valid YAML"),
        ("a: !!python/name:os.system", "Not valid YAML"),
        ("a: 1\n---\nb: 2\n", "Not valid YAML"),
    ],
)
def test_the_loader_refuses_with_a_short_message(text: str, words: str) -> None:
    with pytest.raises(inputs.YAMLRefused) as caught:
        inputs.load_yaml(text)
    assert words in str(caught.value)
    assert len(str(caught.value)) <= 2 * inputs.MAX_ERROR


def test_the_loader_reads_twenty_levels() -> None:
    assert inputs.load_yaml("a: " + "[" * 19 + "]" * 19) is not None


def test_the_billion_laughs_is_refused_before_anything_expands(team: Team, fake_cluster: Cluster) -> None:
    with pytest.raises(services.ValidationError) as caught:
        services.submit_job(team.member("member"), spec(team, fake_cluster, sft(extra_yaml=BILLION_LAUGHS)))
    assert caught.value.message_dict == {"extra_yaml": ["YAML anchors and aliases are not allowed."]}
    assert not Job.objects.exists()


def test_training_configs_errors_quote_little_of_what_was_sent(team: Team, fake_cluster: Cluster) -> None:
    """A list where a number goes: training.config quotes the value; the message is cut short."""
    extra = "training:\n  seed: [" + ", ".join(["1234567890"] * 1000) + "]\n"
    with pytest.raises(services.ValidationError) as caught:
        services.submit_job(team.member("member"), spec(team, fake_cluster, sft(extra_yaml=extra)))
    [message] = caught.value.message_dict["extra_yaml"]
    assert message.startswith("training.seed: must be an integer") and len(message) <= inputs.MAX_ERROR


# --- the merged run.yaml ------------------------------------------------------------------------------


def refusal(team: Team, cluster: Cluster, request: TrainingRequest) -> dict[str, list[str]]:
    with pytest.raises(services.ValidationError) as caught:
        services.submit_job(team.member("member"), spec(team, cluster, request, nodes=1, gpus_per_node=1))
    assert not Job.objects.exists()
    return caught.value.message_dict


def evaluation(**fields: Any) -> TrainingRequest:
    values = {"kind": "eval", "model": MODEL, "questions": "/data/q.jsonl", "judge_endpoint": "judge"}
    return TrainingRequest(**{**values, **fields})


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("model: {name_or_path: ../../other/model}", "model.name_or_path", "“..”"),
        ("model: {name_or_path: ~other/model}", "model.name_or_path", "“~”"),
        ("tokenizer: {name_or_path: /m/../../x}", "tokenizer.name_or_path", "“..”"),
        ("tokenizer: {chat_template: ../../etc/passwd}", "tokenizer.chat_template", "“..”"),
        ("data: {train_files: [/d/../../x.jsonl]}", "data.train_files[0]", "“..”"),
        ("data: {eval_files: [x.jsonl]}", "data.eval_files[0]", "absolute path"),
        ("checkpoint: {resume: ../../../other/run/out}", "checkpoint.resume", "“..”"),
        ("wandb: {dir: /home/other/wandb}", "wandb.dir", "relative to the run directory"),
        ("wandb: {dir: ../wandb}", "wandb.dir", "“..”"),
        ('wandb: {name: "a\\u202eb"}', "wandb.name", "direction overrides"),
        ('wandb: {project: "a\\nb"}', "wandb.project", "Control characters"),
        ('training: {"a\\u2066b": 1}', "training", "a key"),
        ("model: {trust_remote_code: true}", "model.trust_remote_code", "not allowed on this cluster"),
    ],
)
def test_the_merged_config_is_held_to_the_fields_rules(
    team: Team, fake_cluster: Cluster, extra: str, key: str, words: str
) -> None:
    errors = refusal(team, fake_cluster, sft(extra_yaml=extra))
    assert list(errors) == ["extra_yaml"], errors
    assert any(m.startswith(f"{key}: ") and words in m for m in errors.get("extra_yaml", [])), errors


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ("evaluate: {model_id: ../x}", "evaluate.model_id", "plain name"),
        ("evaluate: {model_id: a/b}", "evaluate.model_id", "plain name"),
        ("evaluate: {questions: q.jsonl}", "evaluate.questions", "absolute path"),
        ("evaluate: {reference_answers: /r/../../x}", "evaluate.reference_answers", "“..”"),
        ("evaluate: {judge: {prompts_file: ../../p.jsonl}}", "evaluate.judge.prompts_file", "“..”"),
        ('evaluate: {system_prompt: "a\\x1bb"}', "evaluate.system_prompt", "Control characters"),
    ],
)
def test_the_merged_config_of_an_evaluation(
    team: Team, fake_cluster: Cluster, extra: str, key: str, words: str
) -> None:
    from scheduler.models import JudgeEndpoint

    JudgeEndpoint.objects.create(name="judge", base_url="http://127.0.0.1:9/v1")
    errors = refusal(team, fake_cluster, evaluation(extra_yaml=extra))
    assert any(m.startswith(f"{key}: ") and words in m for m in errors.get("extra_yaml", [])), errors


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"model": "/data/../etc"}, "model", "“..”"),
        ({"model": "../other"}, "model", "“..”"),
        ({"train_files": ["/data/../x.jsonl"]}, "train_files", "“..”"),
        ({"judge_model": "x" * 201}, "judge_model", "At most 200"),
        ({"extra_yaml": "#" + "x" * 16_384}, "extra_yaml", "At most 16384"),
        ({"wandb_tags": [f"t{i}" for i in range(65)]}, "wandb_tags", "At most 64 items"),
        ({"eval_files": ["/ok.jsonl", "/a\u202eb.jsonl"]}, "eval_files", "Item 2"),
    ],
)
def test_the_fields_themselves(
    team: Team, fake_cluster: Cluster, fields: dict[str, Any], field: str, words: str
) -> None:
    errors = refusal(team, fake_cluster, sft(**fields))
    assert any(words in m for m in errors[field]), errors


@pytest.mark.parametrize(
    "extra",
    [
        "model: {name_or_path: llm-jp/llm-jp-3-1.8b}",  # a hub name
        "wandb: {dir: wandb-logs}",  # inside the run directory
        "checkpoint: {resume: never}",
        "checkpoint: {resume: /data/runs/x/out/checkpoint-100}",
        'tokenizer: {chat_template: "{% for m in messages %}{{ m.content }}\\n{% endfor %}"}',
        "training: {seed: 1, logging_steps: 1}",
    ],
)
def test_what_stays_in_bounds_is_accepted(team: Team, fake_cluster: Cluster, extra: str) -> None:
    job = services.submit_job(team.member("member"), spec(team, fake_cluster, sft(extra_yaml=extra)))
    assert yaml.safe_load(job.config_yaml)["output"]["dir"] == "out"


def test_an_admin_allows_trust_remote_code_per_cluster(team: Team, fake_cluster: Cluster) -> None:
    request = sft(extra_yaml="model: {trust_remote_code: true}")
    refusal(team, fake_cluster, request)
    fake_cluster.allow_trust_remote_code = True
    fake_cluster.save(update_fields=["allow_trust_remote_code"])
    job = services.submit_job(team.member("member"), spec(team, fake_cluster, request))
    assert yaml.safe_load(job.config_yaml)["model"]["trust_remote_code"] is True


def test_the_admin_page_offers_the_switch(team: Team, fake_cluster: Cluster) -> None:
    page = team.client("admin").get(f"/admin/scheduler/cluster/{fake_cluster.pk}/change/")
    assert page.status_code == 200 and 'name="allow_trust_remote_code"' in page.content.decode()


# --- the web forms ----------------------------------------------------------------------------------------


def test_the_training_form_refuses_the_billion_laughs(team: Team, fake_cluster: Cluster) -> None:
    response = team.client("member").post(
        "/jobs/train/?kind=sft", form_data(team, fake_cluster, extra_yaml=BILLION_LAUGHS)
    )
    assert response.status_code == 200
    assert "YAML anchors and aliases are not allowed." in response.content.decode()
    assert len(response.content) < 200_000
    assert not Job.objects.exists()


@pytest.mark.parametrize("command", ["echo \x1b[2J", "echo a\u202eb", "echo \x07"])
def test_the_job_form_refuses_control_characters_in_commands(
    team: Team, fake_cluster: Cluster, command: str
) -> None:
    data = {
        "subteam": team.sft.pk,
        "cluster": fake_cluster.pk,
        "name": "x",
        "command": command,
        "nodes": 1,
        "gpus_per_node": 1,
        "time_limit_minutes": 10,
        "partition": "",
        "account": "",
    }
    response = team.client("member").post("/jobs/new/", data)
    assert response.status_code == 200
    assert "are not allowed" in response.content.decode()
    assert not Job.objects.exists()
    data["command"] = "echo fine\r\n\techo ok"
    assert team.client("member").post("/jobs/new/", data).status_code == 302
    assert Job.objects.exists()


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"template_name": "a\u202eb"}, "direction overrides"),
        ({"template_description": "x" * 3000}, "At most 2000"),
        ({"judge_model": "x" * 300}, "judge_model: At most 200"),
    ],
)
def test_the_template_button_refuses_unbounded_text(
    team: Team, fake_cluster: Cluster, extra: dict[str, str], words: str
) -> None:
    data = form_data(team, fake_cluster, template_name="t", save_template="1")
    data.update(extra)
    response = team.client("member").post("/jobs/train/?kind=sft", data, follow=True)
    assert words in response.content.decode()
    assert not JobTemplate.objects.exists()
