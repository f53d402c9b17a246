"""The leaderboard in groups (settings.EVAL_RESULT_GROUPS = experiments.board.groups): a sweep's runs
together, the models trained from one base model together, the rest by model name, each baseline alone;
each group's best row shown and the others folded under "N more"; links to each result's evaluation job,
pipeline and training job; ticked results go to the compare page; the same queries for 1x and 10x rows."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import URLResolver, include, path, reverse

from config import urls as config_urls
from evals.models import CATEGORIES, EvalResult
from experiments import board
from experiments.models import ModelRecord, Sweep, SweepRun
from portal import hooks
from portal.models import Subteam
from scheduler.models import Cluster, Job, Pipeline
from tests.browser.conftest import browser, page  # noqa: F401 - Debian's chromium through Playwright
from tests.personas import PASSWORD, Team

MakeJob = Callable[..., Job]
_serial = itertools.count()


def _stub(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    return HttpResponse("stub")


# The experiments app's pages, as the lead wires them into config/urls.py: appended after the real URLs,
# so that the real ones win once they exist (the first pattern of a namespace is the one reversed).
EXPERIMENTS_STUB = path(
    "test-experiments/",
    include(
        (
            [
                path("compare/", _stub, name="compare"),
                path("sweeps/<int:pk>/", _stub, name="sweep"),
            ],
            "experiments",
        )
    ),
)


def urlconf(name: str, patterns: list[Any]) -> ModuleType:
    module = ModuleType(name)
    module.urlpatterns = patterns  # type: ignore[attr-defined]
    return module


@pytest.fixture
def experiments_urls(settings: Any) -> None:
    settings.ROOT_URLCONF = urlconf("with_experiments", [*config_urls.urlpatterns, EXPERIMENTS_STUB])


@pytest.fixture
def no_experiments_urls(settings: Any) -> None:
    """The site without the experiments pages: the board neither links sweeps nor offers a comparison."""
    patterns = [
        p
        for p in config_urls.urlpatterns
        if not (isinstance(p, URLResolver) and p.namespace == "experiments")
    ]
    settings.ROOT_URLCONF = urlconf("without_experiments", patterns)


# --- data ------------------------------------------------------------------------------------------------


def result(model: str, average: float, *, math: float = 5.0, **fields: Any) -> EvalResult:
    scores = dict.fromkeys(CATEGORIES, 6.0)
    scores["math"] = math
    fields.setdefault("source", EvalResult.Source.IMPORT)
    return EvalResult.objects.create(model_name=model, average=average, **scores, **fields)


def training_job(make_job: MakeJob, model: str = "", **fields: Any) -> Job:
    parameters = {"training": {"kind": "sft", "model": model, "learning_rate": 1e-5}} if model else {}
    return make_job(name=f"train-{next(_serial)}", kind=Job.Kind.SFT, parameters=parameters, **fields)


def make_sweep(team: Team, cluster: Cluster, make_job: MakeJob, runs: int, name: str = "lr-sweep") -> Sweep:
    sweep = Sweep.objects.create(
        name=name, owner=team.member("member"), subteam=team.sft, cluster=cluster, kind="sft"
    )
    for number in range(runs):
        SweepRun.objects.create(
            sweep=sweep, number=number, job=training_job(make_job, "meta-llama/Llama-3.1-8B")
        )
    return sweep


def sweep_jobs(sweep: Sweep) -> list[Job]:
    return [run.job for run in sweep.runs.select_related("job").order_by("number")]


def eval_job(make_job: MakeJob, pipeline: Pipeline | None = None) -> Job:
    return make_job(name=f"eval-{next(_serial)}", kind=Job.Kind.EVAL, pipeline=pipeline, pipeline_step=2)


def group_body(body: str, key: str) -> str:
    match = re.search(rf'<tbody class="group" data-group="{re.escape(key)}"[^>]*>(.*?)</tbody>', body, re.S)
    assert match, f"no group {key!r}"
    return match.group(1)


def row_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="result-(\d+)"', html)]


def folded_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr id="result-(\d+)" class="[^"]*\bmore\b[^"]*"', html)]


# --- experiments.board.groups ----------------------------------------------------------------------------


def test_a_sweeps_runs_group_under_the_sweep_with_its_page(
    team: Team, cluster: Cluster, make_job: MakeJob, experiments_urls: None
) -> None:
    sweep = make_sweep(team, cluster, make_job, runs=2)
    first, second = (
        result(f"run-{i}", 7.0 + i, trained_by_job=job) for i, job in enumerate(sweep_jobs(sweep))
    )
    found = board.groups([first, second])
    assert found[first.pk] == found[second.pk]
    group = found[first.pk]
    assert (group.key, group.label, group.kind) == (f"sweep:{sweep.pk}", "lr-sweep", "sweep")
    assert group.url == reverse("experiments:sweep", args=[sweep.pk]) == sweep.get_absolute_url()


def test_without_the_experiments_pages_a_sweep_group_has_no_link(
    team: Team, cluster: Cluster, make_job: MakeJob, no_experiments_urls: None
) -> None:
    sweep = make_sweep(team, cluster, make_job, runs=1)
    found = board.groups([result("run", 7.0, trained_by_job=sweep_jobs(sweep)[0])])
    assert [(g.kind, g.label, g.url) for g in found.values()] == [("sweep", "lr-sweep", None)]


def test_models_trained_from_one_base_model_group_together_by_its_short_name(make_job: MakeJob) -> None:
    a = result("sft-a", 7.0, trained_by_job=training_job(make_job, "meta-llama/Llama-3.1-8B"))
    b = result("sft-b", 6.0, trained_by_job=training_job(make_job, "meta-llama/Llama-3.1-8B/"))
    other = result("sft-c", 6.5, trained_by_job=training_job(make_job, "/models/llm-jp-3-1.8b"))
    found = board.groups([a, b, other])
    assert found[a.pk].key == found[b.pk].key == "base:meta-llama/Llama-3.1-8B"
    assert (found[a.pk].label, found[a.pk].kind, found[a.pk].url) == ("Llama-3.1-8B", "base", None)
    assert (found[other.pk].label, found[other.pk].kind) == ("llm-jp-3-1.8b", "base")


def test_the_lineage_names_the_base_model_of_a_model_trained_from_another_jobs_output(
    make_job: MakeJob,
) -> None:
    """SFT from the hub, then DPO from the SFT job's output (a pipeline: its request names no model)."""
    sft = training_job(make_job, "meta-llama/Llama-3.1-8B")
    dpo = training_job(make_job)  # model: the previous step's output
    sft_record = ModelRecord.objects.create(
        job=sft, path="/runs/sft/out", base_model="meta-llama/Llama-3.1-8B"
    )
    ModelRecord.objects.create(job=dpo, path="/runs/dpo/out", base_model="/runs/sft/out", base=sft_record)
    sft_result = result("sft", 7.0, trained_by_job=sft)
    dpo_result = result("dpo", 7.5, trained_by_job=dpo)
    found = board.groups([sft_result, dpo_result])
    assert found[dpo_result.pk] == found[sft_result.pk]
    assert (found[dpo_result.pk].kind, found[dpo_result.pk].label) == ("base", "Llama-3.1-8B")


def test_results_without_a_known_base_group_by_model_name_and_baselines_stand_alone(
    make_job: MakeJob,
) -> None:
    custom = make_job(name="custom", kind=Job.Kind.CUSTOM)  # no training request, no model record
    imported = [result("model-x", 6.0), result("model-x", 6.2, trained_by_job=custom), result("model-y", 5.0)]
    baselines = [
        result("gpt-4o", 8.0, is_baseline=True, source="manual"),
        result("gpt-4o", 8.1, is_baseline=True, source="manual"),
    ]
    found = board.groups([*imported, *baselines])
    assert found[imported[0].pk] == found[imported[1].pk] != found[imported[2].pk]
    assert (found[imported[0].pk].kind, found[imported[0].pk].label) == ("model", "model-x")
    assert found[baselines[0].pk] != found[baselines[1].pk]
    assert {found[b.pk].kind for b in baselines} == {"baseline"}


def test_groups_reads_the_training_jobs_it_was_not_given_in_one_query(make_job: MakeJob) -> None:
    def made(n: int) -> list[EvalResult]:
        for i in range(n):
            result(f"m{i}", 6.0, trained_by_job=training_job(make_job, f"org/base-{i % 3}"))
        return list(EvalResult.objects.all())  # trained_by_job not loaded

    two = made(2)
    with CaptureQueriesContext(connection) as few:
        board.groups(two)
    twenty = made(18)
    with CaptureQueriesContext(connection) as many:
        found = board.groups(twenty)
    assert len(few) == len(many) == 3  # sweep runs, model records, the jobs' parameters
    assert {g.label for g in found.values()} == {"base-0", "base-1", "base-2"}


# --- the leaderboard: groups, folding, links, comparison -------------------------------------------------


@pytest.fixture
def sweep_board(team: Team, cluster: Cluster, make_job: MakeJob, experiments_urls: None) -> dict[str, Any]:
    """A sweep of 3 runs (the middle one the best by average, the last one by math), each evaluated in a
    pipeline, and a baseline."""
    sweep = make_sweep(team, cluster, make_job, runs=3)
    pipeline = Pipeline.objects.create(
        name="sft → eval", owner=team.member("member"), subteam=team.sft, cluster=cluster
    )
    runs = [
        result(
            f"lr-{i}",
            average,
            math=math,
            trained_by_job=job,
            job=eval_job(make_job, pipeline),
            subteam=team.sft,
            source=EvalResult.Source.JOB,
        )
        for i, (job, average, math) in enumerate(
            zip(sweep_jobs(sweep), (6.5, 7.5, 7.0), (4.0, 5.0, 9.0), strict=True)
        )
    ]
    ref = result("external reference model", 7.8, is_baseline=True, source="manual")
    return {"sweep": sweep, "runs": runs, "ref": ref, "pipeline": pipeline}


def test_a_group_shows_its_best_row_and_folds_the_rest(sweep_board: dict[str, Any], team: Team) -> None:
    low, best, by_math = sweep_board["runs"]
    body = team.client("member").get("/leaderboard/").content.decode()
    assert row_ids(body) == [sweep_board["ref"].pk, best.pk, by_math.pk, low.pk]  # groups by their best
    group = group_body(body, f"sweep:{sweep_board['sweep'].pk}")
    assert row_ids(group) == [best.pk, by_math.pk, low.pk]
    assert folded_ids(group) == [by_math.pk, low.pk]
    assert '<details class="more"><summary>2 more</summary></details>' in group
    head = group.split("</tr>")[0]
    assert "details" in head  # the disclosure sits in the shown row
    sweep_link = f'href="{sweep_board["sweep"].get_absolute_url()}"'
    assert sweep_link in head and "sweep lr-sweep" in head
    ref = group_body(body, f"baseline:{sweep_board['ref'].pk}")
    assert "details" not in ref and folded_ids(ref) == []


def test_the_css_hides_folded_rows_until_their_group_is_opened() -> None:
    from django.contrib.staticfiles import finders

    found = finders.find("evals/evals.css")
    assert isinstance(found, str)
    css = Path(found).read_text(encoding="utf-8")
    assert "tbody.group:has(details.more:not([open])) > tr.more { display: none; }" in css
    assert "table.scores td { white-space: nowrap; }" in css


def test_the_best_row_of_a_group_follows_the_sort(sweep_board: dict[str, Any], team: Team) -> None:
    low, best, by_math = sweep_board["runs"]
    response = team.client("member").get("/leaderboard/", {"sort": "-math"}, headers={"HX-Request": "true"})
    group = group_body(response.content.decode(), f"sweep:{sweep_board['sweep'].pk}")
    assert row_ids(group) == [by_math.pk, best.pk, low.pk]
    assert folded_ids(group) == [best.pk, low.pk]


def test_each_row_links_its_result_evaluation_pipeline_and_training_job(
    sweep_board: dict[str, Any], team: Team
) -> None:
    body = team.client("member").get("/leaderboard/").content.decode()
    for run in sweep_board["runs"]:
        row = body.split(f'<tr id="result-{run.pk}"')[1].split("</tr>")[0]
        assert f'href="{run.get_absolute_url()}"' in row
        assert f'href="{run.job.get_absolute_url()}" data-link="eval-job"' in row
        assert f'href="{sweep_board["pipeline"].get_absolute_url()}" data-link="pipeline"' in row
        assert f'href="{run.trained_by_job.get_absolute_url()}" data-link="training-job"' in row
        assert f"{run.average:.2f}" in row
        assert '<a class="badge subteam"' in row and '<span class="badge source job">' in row
    ref = body.split(f'<tr id="result-{sweep_board["ref"].pk}"')[1].split("</tr>")[0]
    assert "data-link" not in ref and '<span class="badge subteam">Whole project</span>' in ref


def test_ticked_results_go_to_the_compare_page(sweep_board: dict[str, Any], team: Team) -> None:
    body = team.client("member").get("/leaderboard/").content.decode()
    form = re.search(r'<form method="get" action="([^"]+)" id="compare-form"', body)
    assert form and form.group(1) == reverse("experiments:compare")
    for r in (*sweep_board["runs"], sweep_board["ref"]):
        assert f'<input type="checkbox" name="results" value="{r.pk}"' in body
    assert "Compare selected" in body
    start = body.index('id="compare-form"')
    assert start < body.index('name="results"') and body.rindex('name="results"') < body.index(
        "</form>", start
    )


def test_without_a_compare_page_the_board_offers_none(
    team: Team, make_job: MakeJob, no_experiments_urls: None
) -> None:
    result("model-x", 6.0)
    response = team.client("member").get("/leaderboard/")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="results"' not in body and "compare-form" not in body


def test_the_leaderboard_is_grouped_in_japanese_too(sweep_board: dict[str, Any], team: Team) -> None:
    response = team.client("member", language="ja").get("/leaderboard/")
    assert response.status_code == 200
    assert '<details class="more">' in response.content.decode()


def test_without_the_hook_results_group_by_model_name(team: Team, settings: Any) -> None:
    settings.EVAL_RESULT_GROUPS = ""
    older, newer = result("model-x", 6.0), result("model-x", 6.4)
    ref = result("model-x", 9.0, is_baseline=True, source="manual")
    body = team.client("member").get("/leaderboard/").content.decode()
    group = group_body(body, "model:model-x")
    assert row_ids(group) == [newer.pk, older.pk] and folded_ids(group) == [older.pk]
    assert row_ids(group_body(body, f"baseline:{ref.pk}")) == [ref.pk]


# --- a fixed number of queries ---------------------------------------------------------------------------


def populate(team: Team, cluster: Cluster, make_job: MakeJob, n: int, start: int = 0) -> None:
    """n of each: a sweep of 2 evaluated runs (in pipelines), a model trained from a hub model, a DPO
    model trained from an SFT job's output (lineage), an import (the fine-tuning subteam's), an import of
    another subteam (not on its board) and a baseline of the project (on every board)."""
    for i in range(start, start + n):
        subteam: Subteam = team.sft
        result(f"pretrain-{i}", 5.5, subteam=team.pretrain)
        sweep = make_sweep(team, cluster, make_job, runs=2, name=f"sweep-{i}")
        pipeline = Pipeline.objects.create(
            name=f"p{i}", owner=team.member("member"), subteam=team.sft, cluster=cluster
        )
        for j, job in enumerate(sweep_jobs(sweep)):
            result(f"s{i}-{j}", 6 + j, trained_by_job=job, job=eval_job(make_job, pipeline), subteam=subteam)
        result(f"hub-{i}", 6.1, trained_by_job=training_job(make_job, f"org/base-{i}"), subteam=subteam)
        sft = training_job(make_job, "meta-llama/Llama-3.1-8B")
        dpo = training_job(make_job)
        record = ModelRecord.objects.create(
            job=sft, path=f"/runs/{i}/out", base_model="meta-llama/Llama-3.1-8B"
        )
        ModelRecord.objects.create(job=dpo, path=f"/runs/{i}/dpo", base_model=f"/runs/{i}/out", base=record)
        result(f"dpo-{i}", 6.3, trained_by_job=dpo, job=eval_job(make_job), subteam=subteam)
        result(f"import-{i}", 5.0, subteam=subteam)
        result(f"baseline-{i}", 7.0, is_baseline=True, source="manual")


# The session and the user; the results (with their jobs and subteams), their sweep runs, their model
# records and one step up the lineage; the benchmarks, the subteams (and the board's own); the offered
# forms' access checks (member, memberships, user).
LEADERBOARD_QUERIES = {"/leaderboard/": 12, "/leaderboard/sft/": 13}


@pytest.mark.parametrize("url", ["/leaderboard/", "/leaderboard/sft/"])
@pytest.mark.parametrize("htmx", [False, True])
def test_the_grouped_leaderboard_runs_the_same_queries_for_1x_and_10x_rows(
    team: Team, cluster: Cluster, make_job: MakeJob, experiments_urls: None, url: str, htmx: bool
) -> None:
    client = team.client("member")
    headers = {"HX-Request": "true"} if htmx else {}
    populate(team, cluster, make_job, 1)
    client.get(url, headers=headers)  # the session and the caches
    with CaptureQueriesContext(connection) as one:
        first = client.get(url, headers=headers)
    populate(team, cluster, make_job, 9, start=1)
    with CaptureQueriesContext(connection) as ten:
        tenfold = client.get(url, headers=headers)
    assert first.status_code == tenfold.status_code == 200
    # The sweeps' folded runs and the lineage's base model.
    assert tenfold.content.decode().count("<details") == 11
    assert len(one) == len(ten), "\n".join(q["sql"][:160] for q in ten.captured_queries)
    if not htmx:
        assert len(ten) == LEADERBOARD_QUERIES[url], "\n".join(q["sql"][:160] for q in ten.captured_queries)


def test_the_board_asks_the_hook_named_by_the_setting(team: Team, settings: Any) -> None:
    settings.EVAL_RESULT_GROUPS = "experiments.board.groups"
    assert hooks.setting_function("EVAL_RESULT_GROUPS") is board.groups
    settings.EVAL_RESULT_GROUPS = ""
    assert hooks.setting_function("EVAL_RESULT_GROUPS") is None


# --- in a real browser: the folded rows open without a script --------------------------------------------


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_groups_other_rows_open_in_the_browser(
    live_server: Any,
    page: Any,  # noqa: F811
    sweep_board: dict[str, Any],
    team: Team,
) -> None:
    low, best, by_math = sweep_board["runs"]
    page.goto(f"{live_server.url}/accounts/login/?next=/leaderboard/")
    page.fill("#id_username", "member")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/leaderboard/")
    assert page.locator(f"#result-{best.pk}").is_visible()
    assert not page.locator(f"#result-{low.pk}").is_visible()
    assert not page.locator(f"#result-{by_math.pk}").is_visible()
    page.click(f"#result-{best.pk} details.more summary")
    page.locator(f"#result-{low.pk}").wait_for(state="visible")
    assert page.locator(f"#result-{by_math.pk}").is_visible()
    line = page.locator(f"#result-{sweep_board['ref'].pk}").bounding_box()["height"]
    assert page.locator(f"#result-{best.pk}").bounding_box()["height"] < 1.5 * line  # nothing wraps
