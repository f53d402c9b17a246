"""Experiments on the dev cluster: a data set registered and checked there as its member (a path that is
not there refused; a changed file caught on re-registration), and a 2×2 sweep of the tiny SFT (learning
rate × LoRA rank) with an MT-Bench evaluation after each run, from the form and from the API, run to the
end: its table shows 4 configs with scores, compare shows only what differs, lineage names the data set."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from rest_framework.test import APIClient

from demo import assets as demo_assets
from evals.models import EvalResult
from experiments.models import Dataset, ModelRecord, Sweep
from scheduler.models import Cluster, Job
from tests.personas import Team
from tests.scheduler.conftest import JUDGE_NAME
from tests.scheduler.test_training_on_cluster import TERMINAL, describe

pytestmark = pytest.mark.training

TINY_SFT = {
    "max_steps": 4,
    "micro_batch_size": 4,
    "global_batch_size": 8,
    "max_length": 64,
    "dtype": "fp32",
    "use_cpu": True,
    "wandb_mode": "offline",
    "save_steps": 1000,
    "extra_yaml": "training:\n  logging_steps: 1\n",
}
EVAL = {
    "judge_model": "judge-x",
    "judge_endpoint": JUDGE_NAME,
    "max_new_tokens": 8,
    "dtype": "fp32",
    "use_cpu": True,
    "wandb_mode": "offline",
}


def api(team: Team, role: str = "member") -> APIClient:
    client = APIClient()
    client.force_authenticate(team.users[role])
    return client


def register(team: Team, cluster: Cluster, path: str, version: str = "v1") -> Any:
    return api(team).post(
        "/api/v1/datasets/",
        {"subteam": "sft", "cluster": cluster.pk, "name": "tiny-sft", "version": version, "path": path},
        format="json",
    )


def test_a_data_set_is_checked_on_the_cluster_as_its_member(
    team: Team, training_cluster: Cluster, run_until: Any, remote: Any
) -> None:
    home = training_cluster.work_dir_for("tk-member")
    path = f"{home}/data/ichikara.jsonl"
    content = b'{"messages": []}\n' * 5
    mine = remote.as_user("tk-member")
    mine.conn.write_file(path, content, mode=0o600)

    missing = register(team, training_cluster, f"{home}/data/nope.jsonl")
    assert missing.status_code == 400 and "does not exist" in str(missing.json()["path"])
    assert not Dataset.objects.exists()
    # Another member cannot register what only tk-member may read: checked as them, not the service.
    theirs = api(team, "lead").post(
        "/api/v1/datasets/",
        {"subteam": "sft", "cluster": training_cluster.pk, "name": "stolen", "version": "v1", "path": path},
        format="json",
    )
    assert theirs.status_code == 400 and "permission denied" in str(theirs.json()), theirs.json()

    response = register(team, training_cluster, path)
    assert response.status_code == 201, response.content
    dataset = Dataset.objects.get(pk=response.json()["id"])

    def settled() -> bool:
        dataset.refresh_from_db()
        return dataset.state != Dataset.State.CHECKING

    run_until(settled, timeout=60, interval=0.5)
    assert dataset.state == Dataset.State.READY, dataset.check_message
    assert dataset.sha256 == hashlib.sha256(content).hexdigest()
    assert (dataset.rows, dataset.size_bytes, dataset.is_directory) == (5, len(content), False)

    mine.conn.write_file(path, content + b'{"messages": []}\n', mode=0o600)
    again = register(team, training_cluster, path)
    assert again.status_code == 200 and again.json()["id"] == dataset.pk

    def rechecked() -> bool:
        dataset.refresh_from_db()
        return not dataset.recheck

    run_until(rechecked, timeout=60, interval=0.5)
    changed = hashlib.sha256(content + b'{"messages": []}\n').hexdigest()
    assert dataset.state == Dataset.State.CHANGED
    assert changed[:12] in dataset.check_message and dataset.sha256[:12] in dataset.check_message
    assert dataset.sha256 == hashlib.sha256(content).hexdigest() and dataset.rows == 5  # unchanged


def form_fields(assets: demo_assets.Assets, cluster: Cluster, team: Team) -> dict[str, Any]:
    fields: dict[str, Any] = {
        **demo_assets.TINY,
        "kind": "sft",
        "subteam": team.sft.pk,
        "cluster": cluster.pk,
        "model": assets.model,
        "datasets": "tiny-sft@v1",
        "max_steps": "4",
        "micro_batch_size": "4",
        "global_batch_size": "8",
        "save_steps": "1000",
        "time_limit_minutes": "10",
        "sweep-sweep_name": "form-sweep",
        "sweep-mode": "grid",
        "sweep-axis1_field": "learning_rate",
        "sweep-axis1_values": "1e-3, 5e-3",
        "sweep-axis2_field": "lora_r",
        "sweep-axis2_values": "4, 8",
        "sweep-with_eval": "on",
        "eval-nodes": "1",
        "eval-gpus_per_node": "1",
        "eval-time_limit_minutes": "10",
        "eval-questions": assets.questions,
    }
    fields.update({f"eval-{k}": ("on" if v is True else str(v)) for k, v in EVAL.items()})
    return fields


def test_a_2x2_sweep_with_evaluations_runs_to_the_end_from_the_form_and_the_api(
    team: Team, training_cluster: Cluster, assets: demo_assets.Assets, run_until: Any
) -> None:
    response = register(team, training_cluster, assets.sft_data)
    assert response.status_code == 201, response.content
    dataset = Dataset.objects.get()
    run_until(lambda: Dataset.objects.filter(pk=dataset.pk, state=Dataset.State.READY).exists(), timeout=60)

    client = team.client("member")
    posted = client.post("/sweeps/new/?kind=sft", form_fields(assets, training_cluster, team))
    assert posted.status_code == 302, posted.content.decode()[-3000:]
    body = {
        "name": "api-sweep",
        "subteam": "sft",
        "cluster": training_cluster.pk,
        "kind": "sft",
        "time_limit": 10,
        "training": {**TINY_SFT, "model": assets.model, "datasets": ["tiny-sft@v1"]},
        "axes": [{"field": "learning_rate", "values": [1e-3, 5e-3]}, {"field": "lora_r", "values": [4, 8]}],
        "eval": {"training": {**EVAL, "questions": assets.questions}, "time_limit": 10},
    }
    answered = api(team).post("/api/v1/sweeps/", body, format="json")
    assert answered.status_code == 201, answered.content
    sweeps = list(Sweep.objects.order_by("pk"))
    assert [s.name for s in sweeps] == ["form-sweep", "api-sweep"]
    jobs = list(Job.objects.filter(sweep_run__sweep__in=sweeps)) + list(
        Job.objects.filter(sweep_eval_of__sweep__in=sweeps)
    )
    assert len(jobs) == 16

    def done() -> bool:
        states = set(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True))
        results = EvalResult.objects.filter(job__in=jobs).count()
        return states <= TERMINAL and (results == 8 or not states <= {Job.State.COMPLETED})

    run_until(done, timeout=900, interval=1.0)
    for job in Job.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.state == Job.State.COMPLETED, describe(job)
    run_until(lambda: ModelRecord.objects.filter(job__sweep_run__sweep__in=sweeps).count() == 8, timeout=30)

    for sweep in sweeps:
        page = client.get(sweep.get_absolute_url()).content.decode()
        table = page.split('data-testid="sweep-table"')[1].split("</table>")[0]
        assert table.count('data-run="') == 4
        assert table.count('class="num score"><a href="/evals/results/') == 4  # every config has its score
        assert table.count('class="best"') == 1
        for lr in ("0.001", "0.005"):
            assert f'<td class="mono">{lr}</td>' in table
        read = api(team).get(f"/api/v1/sweeps/{sweep.pk}/").json()
        assert all(
            run["average"] is not None and run["job_state"] == Job.State.COMPLETED for run in read["runs"]
        )

    form_sweep = sweeps[0]
    one, three = form_sweep.runs.get(number=1), form_sweep.runs.get(number=3)  # lr differs, rank equal
    compared = client.get(f"/compare/?jobs={one.job_id}&jobs={three.job_id}").content.decode()
    diff = compared.split('data-testid="config-diff"')[1].split("</table>")[0]
    assert diff.count("data-field=") == 1 and 'data-field="learning_rate"' in diff

    best = next(r for r in form_sweep.runs.select_related("eval_job__eval_result") if r.eval_job)
    result = best.eval_job.eval_result
    assert result.trained_by_job_id == best.job_id
    lineage = client.get(f"/lineage/results/{result.pk}/").content.decode()
    assert best.job.name in lineage and "tiny-sft@v1" in lineage and "lora_r" in lineage
    record = ModelRecord.objects.get(job=best.job)
    assert list(record.datasets.all()) == [dataset] and record.base_model == assets.model
