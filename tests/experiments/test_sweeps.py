"""Sweeps without a cluster: axes expanded and checked, every run validated as a single job would be,
refusals that submit nothing (0 runs, over the cap, a field that may not vary, a run that fails, a sweep
larger than the booking or the quota, with the arithmetic), the form, the API and the table."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from evals.models import EvalResult
from experiments import sweeps
from experiments.models import Sweep, SweepRun
from lending.models import Reservation, SubteamQuota
from scheduler.models import Cluster, Job, Pipeline
from tests.experiments.helpers import eval_spec, fake_cluster, finish, result_for, spec
from tests.personas import Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(team: Team) -> Cluster:
    return fake_cluster(team)


def plan(team: Team, cluster: Cluster, axes: list[tuple[str, list[Any]]], **kwargs: Any) -> sweeps.Plan:
    base = kwargs.pop("base", None) or spec(team, cluster)
    return sweeps.plan(name=kwargs.pop("name", "lr-rank"), base=base, axes_raw=axes, **kwargs)


def refused(
    team: Team, cluster: Cluster, axes: list[tuple[str, list[Any]]], **kwargs: Any
) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        plan(team, cluster, axes, **kwargs)
    assert Job.objects.count() == 0 and Sweep.objects.count() == 0
    return caught.value.message_dict


def test_a_2x2_grid_with_evaluations_is_four_pipelines_of_train_then_eval(
    team: Team, cluster: Cluster
) -> None:
    evaluation = eval_spec(team, cluster)
    assert evaluation.training is not None
    evaluation.training.model = "/data/models/base"  # e.g. from an eval template: never the base model
    found = plan(
        team,
        cluster,
        [("learning_rate", ["1e-5", "2e-5"]), ("lora_r", ["8", "16"])],
        eval_spec=evaluation,
    )
    assert [values for values, _t, _e in found.runs] == [
        {"learning_rate": 1e-5, "lora_r": 8},
        {"learning_rate": 1e-5, "lora_r": 16},
        {"learning_rate": 2e-5, "lora_r": 8},
        {"learning_rate": 2e-5, "lora_r": 16},
    ]
    assert found.gpu_hours == pytest.approx(4 * 1 + 4 * 0.5)
    sweep = sweeps.submit(team.member("member"), found)
    runs = list(sweep.runs.select_related("job", "eval_job", "pipeline"))
    assert [r.job.name for r in runs] == ["lr-rank-01", "lr-rank-02", "lr-rank-03", "lr-rank-04"]
    assert Pipeline.objects.count() == 4 and Job.objects.count() == 8
    for run in runs:
        training = run.job.parameters["training"]
        assert training["learning_rate"] == run.values["learning_rate"]
        assert training["lora_r"] == run.values["lora_r"]
        assert training["lora"] is True  # varying a LoRA field trains a LoRA adapter
        assert run.job.parameters["config"]["lora"]["r"] == run.values["lora_r"]
        assert run.eval_job is not None and run.eval_job.depends_on_id == run.job.pk
        assert run.eval_job.parameters["config"]["model"]["name_or_path"] == run.job.output_dir
        assert run.pipeline is not None and run.pipeline.subteam == team.sft
    assert sweep.fields == ["learning_rate", "lora_r"] and sweep.with_eval


def test_side_by_side_takes_the_ith_values_together_and_needs_equal_lengths(
    team: Team, cluster: Cluster
) -> None:
    found = plan(team, cluster, [("learning_rate", [1e-5, 2e-5]), ("num_train_epochs", [1, 2])], mode="list")
    assert [v for v, _t, _e in found.runs] == [
        {"learning_rate": 1e-5, "num_train_epochs": 1.0},
        {"learning_rate": 2e-5, "num_train_epochs": 2.0},
    ]
    errors = refused(team, cluster, [("learning_rate", [1e-5, 2e-5]), ("lora_r", [8])], mode="list")
    assert "learning_rate 2, lora_r 1" in errors["axes"][0]


@pytest.mark.parametrize(
    ("axes", "words"),
    [
        ([], "Vary at least one field"),
        ([("learning_rate", [])], "at least one value"),
        ([("command", ["x"])], "not a field a sft sweep can vary"),
        ([("use_cpu", ["true"])], "not a field"),
        ([("dpo_beta", [0.1])], "not a field a sft sweep can vary"),
        ([("learning_rate", ["fast"])], "is not a number"),
        ([("lora_r", ["8.5"])], "not a whole number"),
        ([("learning_rate", ["nan"])], "is not a number"),
        ([("lora_r", [8]), ("lora_r", [16])], "varied twice"),
        ([("lora_r", [8, 8])], "given twice"),
        ([("lr_scheduler_type", ["cosine", "zigzag"])], "not one of the choices"),
        ([("learning_rate", [1e-5] * 2 + list(range(1, 64)))], "at most 64 values"),
    ],
)
def test_bad_axes_are_refused_with_what_is_wrong(
    team: Team, cluster: Cluster, axes: list[tuple[str, list[Any]]], words: str
) -> None:
    errors = refused(team, cluster, axes)
    assert any(words in message for message in errors["axes"]), errors


def test_more_runs_than_the_cap_are_refused_with_the_count(
    team: Team, cluster: Cluster, settings: Any
) -> None:
    errors = refused(
        team, cluster, [("learning_rate", [1e-5 * i for i in range(1, 6)]), ("lora_r", list(range(1, 14)))]
    )
    assert errors["axes"] == ["The sweep has 65 runs (5 × 13); at most 64 may be submitted at once."]
    many = [(name, list(range(1, 65))) for name in ("lora_r", "lora_alpha", "max_steps", "max_length")]
    errors = refused(team, cluster, many)  # 64**4 runs: counted and refused, never built
    assert errors["axes"] == [
        "The sweep has 16777216 runs (64 × 64 × 64 × 64); at most 64 may be submitted at once."
    ]
    settings.SWEEP_MAX_RUNS = 3
    errors = refused(team, cluster, [("lora_r", [4, 8, 16, 32])])
    assert "4 runs" in errors["axes"][0] and "at most 3" in errors["axes"][0]


def test_a_run_that_fails_the_forms_checks_refuses_the_whole_sweep_naming_it(
    team: Team, cluster: Cluster
) -> None:
    errors = refused(team, cluster, [("learning_rate", ["1e-5", "0.5"]), ("lora_r", [8, 0])])
    runs = errors["runs"]
    assert any(m.startswith("Run 2 (learning_rate=1e-05, lora_r=0): lora_r:") for m in runs), runs
    assert any(m.startswith("Run 3 (learning_rate=0.5, lora_r=8): learning_rate: Between") for m in runs), (
        runs
    )
    assert not any(m.startswith("Run 1 ") for m in runs)


def test_an_evaluation_that_fails_its_checks_is_named(team: Team, cluster: Cluster) -> None:
    bad_eval = eval_spec(team, cluster)
    assert bad_eval.training is not None
    bad_eval.training.questions = "relative/question.jsonl"
    errors = refused(team, cluster, [("lora_r", [8])], eval_spec=bad_eval)
    assert errors["runs"][0].startswith("Run 1 (its evaluation) (lora_r=8): questions:")


def test_bad_name_and_a_kind_that_does_not_train(team: Team, cluster: Cluster) -> None:
    assert "name" in refused(team, cluster, [("lora_r", [8])], name="no spaces please")
    evaluation = eval_spec(team, cluster)
    assert "kind" in refused(team, cluster, [("lora_r", [8])], base=evaluation)


def test_a_sweep_larger_than_the_booking_it_runs_in_is_refused_with_the_arithmetic(
    team: Team, cluster: Cluster
) -> None:
    now = timezone.now()
    booking = Reservation.objects.create(
        requester=team.member("lead"),
        subteam=team.sft,
        cluster=cluster,
        gpus=2,
        gpus_per_node=2,  # one node of 2 GPUs: the booking holds 2
        start=now - dt.timedelta(hours=1),
        end=now + dt.timedelta(hours=3),
        purpose="sweep",
        state=Reservation.State.ACTIVE,
        slurm_name="tanuki-sft-1",
        on_cluster=True,
    )
    # 4 runs × 1 GPU × 60 min + 4 evals × 1 GPU × 30 min = 6 GPU-hours ≤ 2 GPUs × 3 h: fits.
    plan(team, cluster, [("lora_r", [4, 8, 16, 32])], eval_spec=eval_spec(team, cluster))
    errors = refused(team, cluster, [("lora_r", [4, 8, 16, 32, 64])], eval_spec=eval_spec(team, cluster))
    message = errors["fit"][0]
    assert "5 runs × 1 GPU × 60 min + 5 evaluations × 1 GPU × 30 min = 7.5 GPU-hours" in message
    assert f"booking #{booking.pk} has 2 GPUs × 3.0 h left = 6.0 GPU-hours" in message
    errors = refused(team, cluster, [("lora_r", [4])], base=spec(team, cluster, gpus_per_node=4))
    assert (
        errors["fit"][0]
        == f"A run needs 4 GPUs; booking #{booking.pk}, where Fine-tuning's jobs run now, holds 2."
    )


def test_a_sweep_beyond_the_weekly_quota_or_gpus_at_once_is_refused(team: Team, cluster: Cluster) -> None:
    SubteamQuota.objects.create(subteam=team.sft, max_gpus=2, max_gpu_hours_per_week=5)
    Job.objects.create(  # 2.5 GPU-hours used this week
        name="earlier",
        owner=team.member("member"),
        subteam=team.sft,
        cluster=cluster,
        command="x",
        script="x",
        partition="gpu",
        time_limit_minutes=60,
        gpu_hours=2.5,
        state=Job.State.COMPLETED,
        ended_at=timezone.now(),
    )
    errors = refused_after(team, cluster, [("lora_r", [4, 8, 16])])
    assert "3 runs × 1 GPU × 60 min = 3.0 GPU-hours" in errors["fit"][0]
    assert "quota is 5 GPU-hours a week and its jobs used 2.5 this week: 2.5 left" in errors["fit"][0]
    plan(team, cluster, [("lora_r", [4, 8])])  # 2 GPU-hours fit
    errors = refused_after(team, cluster, [("lora_r", [4])], base=spec(team, cluster, gpus_per_node=4))
    assert any("may use 2 at once" in m for m in errors["fit"])


def refused_after(
    team: Team, cluster: Cluster, axes: list[tuple[str, list[Any]]], **kwargs: Any
) -> dict[str, list[str]]:
    before = Job.objects.count()
    with pytest.raises(ValidationError) as caught:
        plan(team, cluster, axes, **kwargs)
    assert Job.objects.count() == before and Sweep.objects.count() == 0
    return caught.value.message_dict


# --- the form and the page --------------------------------------------------------------------------------


def form_data(cluster: Cluster, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "kind": "sft",
        "subteam": "",
        "cluster": cluster.pk,
        "model": "/data/models/base",
        "train_files": "/data/sft/ichikara.jsonl",
        "learning_rate": "2e-5",
        "lr_scheduler_type": "cosine",
        "warmup_ratio": "0",
        "num_train_epochs": "1",
        "max_steps": "10",
        "micro_batch_size": "1",
        "max_length": "512",
        "lora_r": "16",
        "lora_alpha": "32",
        "lora_dropout": "0.05",
        "dtype": "bf16",
        "wandb_mode": "offline",
        "launcher": "srun",
        "save_steps": "500",
        "checkpoint_signal_seconds": "300",
        "nodes": "1",
        "gpus_per_node": "1",
        "time_limit_minutes": "60",
        "sweep-sweep_name": "lr-rank",
        "sweep-mode": "grid",
        "sweep-axis1_field": "learning_rate",
        "sweep-axis1_values": "1e-5, 2e-5",
        "sweep-axis2_field": "lora_r",
        "sweep-axis2_values": "8 16",
        "sweep-with_eval": "on",
        "eval-questions": "/data/mt-bench/question.jsonl",
        "eval-judge_model": "gpt-4o",
        "eval-judge_endpoint": "team-judge",
        "eval-max_new_tokens": "1024",
        "eval-dtype": "bf16",
        "eval-wandb_mode": "offline",
        "eval-nodes": "1",
        "eval-gpus_per_node": "1",
        "eval-time_limit_minutes": "30",
    }
    data.update(extra)
    return data


def test_the_form_submits_a_sweep_and_the_table_shows_its_runs(team: Team, cluster: Cluster) -> None:
    client = team.client("member")
    page = client.get("/sweeps/new/?kind=sft")
    assert page.status_code == 200 and "What to vary" in page.content.decode()
    response = client.post("/sweeps/new/?kind=sft", form_data(cluster, subteam=team.sft.pk))
    assert response.status_code == 302, response.content.decode()[:3000]
    sweep = Sweep.objects.get()
    assert response["Location"] == sweep.get_absolute_url()
    assert SweepRun.objects.filter(sweep=sweep).count() == 4 and Job.objects.filter(kind="eval").count() == 4
    table = client.get(sweep.get_absolute_url()).content.decode()
    assert table.count('data-run="') == 4
    assert "lr-rank-04" in table and "<th" in table and "lora_r" in table


def test_the_form_refuses_a_bad_sweep_and_keeps_what_was_typed(team: Team, cluster: Cluster) -> None:
    client = team.client("member")
    data = form_data(cluster, subteam=team.sft.pk, **{"sweep-axis2_values": "8 0"})
    response = client.post("/sweeps/new/?kind=sft", data)
    assert response.status_code == 400
    text = response.content.decode()
    assert "Run 2 (learning_rate=1e-05, lora_r=0)" in text and 'value="8 0"' in text
    assert Job.objects.count() == 0


def test_a_training_forms_sweep_button_carries_its_fields_over(team: Team, cluster: Cluster) -> None:
    client = team.client("member")
    form = client.get("/jobs/train/?kind=sft").content.decode()
    assert "Sweep these settings" in form and "/sweeps/new/?kind=sft" in form
    data = {
        k: v
        for k, v in form_data(cluster, subteam=team.sft.pk, learning_rate="3e-5").items()
        if not k.startswith(("sweep-", "eval-"))
    }
    response = client.post("/sweeps/new/?kind=sft", {**data, "from_form": "1"})
    assert response.status_code == 200 and 'value="3e-5"' in response.content.decode()
    assert Job.objects.count() == 0


def test_only_members_of_the_subteam_submit_its_sweeps(team: Team, cluster: Cluster) -> None:
    response = team.client("other").post("/sweeps/new/?kind=sft", form_data(cluster, subteam=team.sft.pk))
    assert response.status_code == 403
    assert Job.objects.count() == 0
    anonymous = team.client("anon").get("/sweeps/new/")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_the_api_submits_a_sweep_and_reads_it_back_with_scores(team: Team, cluster: Cluster) -> None:
    client = APIClient()
    client.force_authenticate(team.users["member"])
    body = {
        "name": "api-sweep",
        "subteam": "sft",
        "cluster": cluster.pk,
        "kind": "sft",
        "training": {
            "model": "/data/models/base",
            "train_files": ["/data/sft/ichikara.jsonl"],
            "max_steps": 10,
        },
        "axes": [{"field": "learning_rate", "values": [1e-5, 2e-5]}, {"field": "lora_r", "values": [8, 16]}],
        "eval": {"training": {"questions": "/data/mt-bench/question.jsonl", "judge_endpoint": "team-judge"}},
    }
    response = client.post("/api/v1/sweeps/", body, format="json")
    assert response.status_code == 201, response.content
    runs = response.json()["runs"]
    assert len(runs) == 4 and runs[3]["values"] == {"learning_rate": 2e-5, "lora_r": 16}
    sweep = Sweep.objects.get(name="api-sweep")
    run = sweep.runs.get(number=3)
    finish(run.job)
    finish(run.eval_job)
    result_for(run.eval_job, run.job, 7.25)
    read = client.get(f"/api/v1/sweeps/{sweep.pk}/").json()
    best = [r for r in read["runs"] if r["best"]]
    assert len(best) == 1 and best[0]["number"] == 3 and best[0]["average"] == 7.25
    refused_body = {**body, "name": "bad", "axes": [{"field": "command", "values": ["x"]}]}
    response = client.post("/api/v1/sweeps/", refused_body, format="json")
    assert response.status_code == 400 and "axes" in response.json()
    other = APIClient()
    other.force_authenticate(team.users["other"])
    assert other.post("/api/v1/sweeps/", {**body, "name": "theirs"}, format="json").status_code == 403
    assert Sweep.objects.count() == 1


def _sweep_with(team: Team, cluster: Cluster, n: int, name: str) -> Sweep:
    found = plan(
        team, cluster, [("lora_r", list(range(1, n + 1)))], name=name, eval_spec=eval_spec(team, cluster)
    )
    sweep = sweeps.submit(team.member("member"), found)
    for run in sweep.runs.select_related("job", "eval_job"):
        finish(run.job)
        assert run.eval_job is not None
        finish(run.eval_job)
        result_for(run.eval_job, run.job, 5 + run.number / 100)
    return sweep


def test_the_sweep_table_sorts_marks_the_best_and_keeps_its_query_count(team: Team, cluster: Cluster) -> None:
    small, large = _sweep_with(team, cluster, 4, "small"), _sweep_with(team, cluster, 40, "large")
    client = team.client("member")
    counts = []
    for sweep in (small, large):
        client.get(sweep.get_absolute_url())  # warm the session and caches
        with CaptureQueriesContext(connection) as queries:
            response = client.get(sweep.get_absolute_url())
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 12, counts
    text = client.get(large.get_absolute_url() + "?sort=-score").content.decode()
    rows = text.split('data-run="')[1:]
    assert rows[0].startswith("40") and 'class="best"' in text.split('data-run="40"')[0][-40:]
    ascending = client.get(large.get_absolute_url() + "?sort=lora_r").content.decode()
    assert ascending.split('data-run="')[1].startswith('1"')
    assert EvalResult.objects.count() == 44


def test_a_template_fills_the_sweep_and_the_subteams_eval_template_its_evaluation_but_not_its_model(
    team: Team, cluster: Cluster
) -> None:
    from scheduler import services as scheduler_services

    sft_template = scheduler_services.save_template(
        team.member("lead"),
        subteam=team.sft,
        name="tiny",
        kind="sft",
        fields={"model": "/data/models/tiny", "train_files": "/data/sft/a.jsonl", "learning_rate": "3e-4"},
    )
    scheduler_services.save_template(
        team.member("lead"),
        subteam=team.sft,
        name="judge",
        kind="eval",
        fields={"model": "/data/models/tiny", "questions": "/data/q.jsonl", "judge_endpoint": "team-judge"},
    )
    page = team.client("member").get(f"/sweeps/new/?kind=sft&template={sft_template.pk}").content.decode()
    assert 'name="learning_rate" value="3e-4"' in page
    assert 'name="eval-questions" value="/data/q.jsonl"' in page
    assert 'name="eval-model" value="/data/models/tiny"' not in page
    assert f'template={sft_template.pk}"' in page  # offered as a start


def test_the_sweeps_page_lists_new_bests_and_marks_the_owners(team: Team, cluster: Cluster) -> None:
    from experiments.models import BoardRecord

    sweep = _sweep_with(team, cluster, 2, "tops")
    run = sweep.runs.select_related("eval_job").get(number=2)
    assert run.eval_job is not None
    BoardRecord.objects.create(result=run.eval_job.eval_result, scope=BoardRecord.Scope.PROJECT)
    mine = team.client("member").get("/sweeps/").content.decode()
    assert "New bests" in mine and "tops-02" in mine, mine.split("<main")[1][:1500]
    assert "top of the project" in mine
    assert '<span class="badge">yours</span>' in mine
    theirs = team.client("other").get("/sweeps/").content.decode()
    assert "tops-02" in theirs and '<span class="badge">yours</span>' not in theirs
