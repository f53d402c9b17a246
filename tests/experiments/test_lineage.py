"""Lineage and compare without a cluster: the worker's step records what each job read and the model each
completed training job wrote (trained from another job's model when it was); the graph reads both ways;
compare shows only what differs; pages and API keep their query counts from 1× to 10× the data."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from experiments import compare, lineage
from experiments.models import Dataset, JobDataset, ModelRecord
from scheduler import services
from scheduler.models import Cluster, Job
from scheduler.steps import CycleStats, Poll
from tests.experiments.helpers import dataset, eval_spec, fake_cluster, finish, result_for, sft, spec
from tests.personas import Team

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(team: Team) -> Cluster:
    return fake_cluster(team)


def step(cluster: Cluster) -> None:
    lineage.record_models(Poll(cluster, None, "test", CycleStats(cluster.name)))  # type: ignore[arg-type]


def trained(team: Team, cluster: Cluster, name: str, refs: list[str], **fields: Any) -> Job:
    job = services.submit_job(
        team.member("member"), spec(team, cluster, sft(train_files=[], datasets=refs, **fields), name=name)
    )
    return finish(job)


def test_the_step_records_data_set_uses_and_models_and_links_a_model_trained_from_another(
    team: Team, cluster: Cluster
) -> None:
    v1 = dataset(team, cluster, "ichikara", "v1")
    v2 = dataset(team, cluster, "ichikara", "v2", derived_from=v1)
    first = trained(team, cluster, "sft-a", ["ichikara@v1"])
    second = trained(team, cluster, "sft-b", ["ichikara@v2"], model=first.output_dir)
    running = services.submit_job(
        team.member("member"), spec(team, cluster, sft(datasets=["ichikara@v2"]), name="run")
    )
    step(cluster)
    step(cluster)  # a second visit adds nothing
    assert JobDataset.objects.count() == 3  # the running job's use is recorded at once
    assert set(JobDataset.objects.values_list("job__name", "dataset__version", "sha256")) == {
        ("sft-a", "v1", v1.sha256),
        ("sft-b", "v2", v2.sha256),
        ("run", "v2", v2.sha256),
    }
    a, b = ModelRecord.objects.get(job=first), ModelRecord.objects.get(job=second)
    assert ModelRecord.objects.count() == 2 and not ModelRecord.objects.filter(job=running).exists()
    assert b.base == a and b.base_model == first.output_dir and a.path == first.output_dir
    assert list(b.datasets.all()) == [v2] and b.config["learning_rate"] == 2e-5


def test_the_graph_reads_from_data_set_to_score_and_back(team: Team, cluster: Cluster) -> None:
    v1 = dataset(team, cluster, "ichikara", "v1")
    job = trained(team, cluster, "sft-a", ["ichikara@v1"], learning_rate=1e-5, lora=True, lora_r=8)
    evaluation = finish(services.submit_job(team.member("member"), eval_spec(team, cluster), depends_on=job))
    result = result_for(evaluation, job, 6.5)
    step(cluster)
    record = ModelRecord.objects.get(job=job)
    graph = lineage.for_result(result)
    expected_edges = {
        (f"dataset:{v1.pk}", f"job:{job.pk}"),
        (f"base:{job.parameters['training']['model']}", f"job:{job.pk}"),
        (f"job:{job.pk}", f"model:{record.pk}"),
        (f"model:{record.pk}", f"result:{result.pk}"),
    }
    assert graph.edges == expected_edges
    assert graph.nodes[f"result:{result.pk}"].focus
    assert "learning_rate=1e-05" in graph.nodes[f"job:{job.pk}"].detail
    back = lineage.for_dataset(v1)
    assert f"result:{result.pk}" in back.nodes and back.nodes[f"dataset:{v1.pk}"].focus
    api = APIClient()
    api.force_authenticate(team.users["other"])
    answer = api.get(f"/api/v1/lineage/results/{result.pk}/").json()
    assert {(e["from"], e["to"]) for e in answer["edges"]} == expected_edges
    assert api.get(f"/api/v1/lineage/datasets/{v1.pk}/").status_code == 200
    assert api.get(f"/api/v1/lineage/jobs/{job.pk}/").status_code == 200
    assert api.get("/api/v1/lineage/jobs/not-a-uuid/").status_code == 404
    page = team.client("other").get(f"/lineage/results/{result.pk}/").content.decode()
    assert (
        "ichikara@v1" in page
        and "sft-a" in page
        and "learning_rate" in page
        and 'data-testid="lineage-graph"' in page
    )
    # An eval job's lineage page is its result's.
    response = team.client("member").get(f"/lineage/jobs/{evaluation.pk}/")
    assert response.status_code == 302 and response["Location"] == f"/lineage/results/{result.pk}/"


def _world(team: Team, cluster: Cluster, n: int, tag: str) -> tuple[Dataset, Job, Any]:
    """n data set versions, n jobs trained on them all, each evaluated."""
    sets = [dataset(team, cluster, f"{tag}{i}", "v1") for i in range(n)]
    jobs = [trained(team, cluster, f"{tag}-job{i}", [d.ref for d in sets]) for i in range(n)]
    results = [result_for(None, job, 5 + i / 10) for i, job in enumerate(jobs)]
    step(cluster)
    return sets[0], jobs[0], results[0]


def test_lineage_pages_keep_their_query_counts_from_1x_to_10x(team: Team, cluster: Cluster) -> None:
    small = _world(team, cluster, 1, "s")
    large = _world(team, cluster, 10, "l")
    client = team.client("member")
    for make_url in (
        lambda w: f"/datasets/{w[0].pk}/",
        lambda w: f"/lineage/jobs/{w[1].pk}/",
        lambda w: f"/lineage/results/{w[2].pk}/",
    ):
        counts = []
        for world in (small, large):
            client.get(make_url(world))
            with CaptureQueriesContext(connection) as queries:
                assert client.get(make_url(world)).status_code == 200
            counts.append(len(queries))
        assert counts[0] == counts[1], (make_url(small), counts)


def test_compare_shows_only_the_fields_that_differ_and_the_score_deltas(team: Team, cluster: Cluster) -> None:
    dataset(team, cluster, "ichikara", "v1")
    dataset(team, cluster, "ichikara", "v2")
    a = trained(team, cluster, "sft-a", ["ichikara@v1"], learning_rate=1e-5, lora=True, lora_r=8)
    b = trained(team, cluster, "sft-b", ["ichikara@v2"], learning_rate=2e-5, lora=True, lora_r=8)
    ra, rb = result_for(None, a, 6.0, math=4.0), result_for(None, b, 6.5, math=5.5)
    step(cluster)
    diff = compare.config_diff([compare.config_of(a), compare.config_of(b)])
    assert [d.field for d in diff] == ["datasets", "learning_rate"]
    page = team.client("member").get(f"/compare/?results={ra.pk}&results={rb.pk}").content.decode()
    table = page.split('data-testid="config-diff"')[1].split("</table>")[0]
    assert 'data-field="learning_rate"' in table and "2e-05" in table
    assert 'data-field="lora_r"' not in table and 'data-field="model"' not in table
    assert "ichikara@v1" in page.split('data-testid="data-diff"')[1] and "ichikara@v2" in page
    scores = page.split('data-testid="score-deltas"')[1]
    assert "(+1.50)" in scores and "(+0.50)" in scores
    by_job = team.client("member").get(f"/compare/?jobs={a.pk},{b.pk}").content.decode()
    assert 'data-field="learning_rate"' in by_job
    api = APIClient()
    api.force_authenticate(team.users["member"])
    answer = api.get(f"/api/v1/compare/?jobs={a.pk}&jobs={b.pk}").json()
    assert [d["field"] for d in answer["config_diff"]] == ["datasets", "learning_rate"]
    assert api.get("/api/v1/compare/?jobs=nope").status_code == 400
    lonely = team.client("member").get(f"/compare/?jobs={a.pk}").content.decode()
    assert "Pick two or more" in lonely and f"jobs={a.pk}&amp;jobs={b.pk}" in lonely  # b offered to add
    job_page = team.client("member").get(a.get_absolute_url()).content.decode()
    assert f"/lineage/jobs/{a.pk}/" in job_page and f"/compare/?jobs={a.pk}" in job_page


def test_a_longer_chain_of_base_models_costs_no_more_queries(team: Team, cluster: Cluster) -> None:
    dataset(team, cluster, "ichikara", "v1")
    results = []
    for depth in (1, 4):
        previous = trained(team, cluster, f"root{depth}", ["ichikara@v1"])
        step(cluster)
        for level in range(depth):
            previous = trained(team, cluster, f"d{depth}-{level}", ["ichikara@v1"], model=previous.output_dir)
            step(cluster)
        results.append(result_for(None, previous, 6.0))
    client = team.client("member")
    counts = []
    for result in results:
        client.get(f"/lineage/results/{result.pk}/")
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/lineage/results/{result.pk}/").content.decode()
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert "root4" in page and "d4-2" in page  # the whole chain is drawn


def test_recording_models_costs_the_same_queries_for_2_or_10_jobs(team: Team, cluster: Cluster) -> None:
    dataset(team, cluster, "ichikara", "v1")
    counts = []
    for n in (2, 10):
        for i in range(n):
            trained(team, cluster, f"batch{n}-{i}", ["ichikara@v1"])
        with CaptureQueriesContext(connection) as queries:
            step(cluster)
        counts.append(len(queries))
    assert counts[0] == counts[1], counts
    assert ModelRecord.objects.count() == 12
    assert all(r.datasets.count() == 1 for r in ModelRecord.objects.all())
