"""The demo's training templates (demo/assets.py) and its stand-in judge (demo/judge.py); no cluster needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client, override_settings

from demo import assets as demo_assets
from demo import judge as demo_judge
from scheduler import services
from scheduler.models import Cluster, Job
from scheduler.training_forms import PipelineForm, TrainingJobForm
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


def test_every_demo_template_fills_a_form_that_submits(team: Team, fake_cluster: Cluster) -> None:
    from demo import judge
    from scheduler.models import JudgeEndpoint

    JudgeEndpoint.objects.create(
        name="demo-judge", base_url="http://127.0.0.1:8000/demo-judge/v1", key_env=judge.KEY_ENV
    )
    assets = demo_assets.Assets("/srv/tanuki-devcluster/shared/assets")
    found = demo_assets.templates(assets)
    assert {kind for _slug, _name, kind, _fields in found} == {"sft", "dpo", "eval", "pipeline", "pretrain"}
    user = team.users["admin"]
    for _slug, name, kind, fields in found:
        data = {**fields, "subteam": str(team.sft.pk), "cluster": str(fake_cluster.pk), "name": "demo"}
        if kind == "pipeline":
            form = PipelineForm(data, user=user)
            assert form.is_valid(), (name, form.errors, [s.errors for s in form.steps.values()])
            pipeline = services.submit_pipeline(team.member("admin"), "demo", form.specs())
            assert [j.kind for j in pipeline.steps()] == ["sft", "dpo", "eval"]
        else:
            training = TrainingJobForm(data, user=user, kind=kind)
            assert training.is_valid(), (name, training.errors)
            spec = training.check()
            assert spec is not None, (name, training.errors)
            assert services.submit_job(team.member("admin"), spec).kind == kind
    assert Job.objects.filter(config_yaml__contains=assets.model).exists()


@override_settings(DEBUG=True)
def test_the_demo_judge_speaks_chat_completions_with_its_key() -> None:
    client = Client()
    prompt = "[The Start of Assistant's Answer]\n東京です。\n[The End of Assistant's Answer]"
    request = {"model": "demo-judge", "messages": [{"role": "user", "content": prompt}]}
    url = "/demo-judge/v1/chat/completions"
    refused = client.post(url, json.dumps(request), content_type="application/json")
    assert refused.status_code == 401
    headers = {"Authorization": f"Bearer {demo_judge.KEY}"}
    answer = client.post(url, json.dumps(request), content_type="application/json", headers=headers)
    assert answer.status_code == 200
    text = answer.json()["choices"][0]["message"]["content"]
    assert f"[[{demo_judge.rating(prompt)}]]" in text and "made-up" in text
    assert 1 <= demo_judge.rating(prompt) <= 10
    bad = client.post(url, "{}", content_type="application/json", headers=headers)
    assert bad.status_code == 400


def test_the_demo_judge_is_not_served_in_production() -> None:
    request = {"messages": [{"role": "user", "content": "x"}]}
    response = Client().post(
        "/demo-judge/v1/chat/completions",
        json.dumps(request),
        content_type="application/json",
        headers={"Authorization": f"Bearer {demo_judge.KEY}"},
    )
    assert response.status_code == 404


@pytest.mark.parametrize(("demo", "answer"), [("1", "routed"), ("", "not routed")])
def test_the_demo_judge_is_routed_only_when_the_demo_runs(demo: str, answer: str) -> None:
    """The portal's own settings install the demo app (and mount the judge) only with DEMO=1."""
    code = (
        "import django\n"
        "django.setup()\n"
        "from django.urls import Resolver404, resolve\n"
        "try:\n"
        "    resolve('/demo-judge/v1/chat/completions')\n"
        "    print('routed')\n"
        "except Resolver404:\n"
        "    print('not routed')\n"
    )
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env = {**base, "DEBUG": "1", "DEMO": demo, "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == answer
