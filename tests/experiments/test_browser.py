"""In a real browser (Debian's chromium): the lineage page of a sweep's best result draws data set → job →
model → score, lists the config and the data set version, and its boxes lead on (to the data set, whose
page draws every model trained on it); the sweep table sorts by score and marks the best."""

from __future__ import annotations

from typing import Any

import pytest

from experiments import sweeps
from scheduler.models import Cluster
from tests.browser.conftest import browser, page  # noqa: F401 - Debian's chromium through Playwright
from tests.experiments.helpers import dataset, eval_spec, fake_cluster, finish, result_for, sft, spec
from tests.experiments.test_lineage import step
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_lineage_of_a_sweeps_best_result_in_the_browser(live_server: Any, page: Any, team: Team) -> None:  # noqa: F811
    cluster: Cluster = fake_cluster(team)
    data = dataset(team, cluster, "ichikara", "v3")
    base = spec(team, cluster, sft(train_files=[], datasets=["ichikara@v3"]))
    found = sweeps.plan(
        name="lr-rank",
        base=base,
        axes_raw=[("learning_rate", ["1e-5", "2e-5"]), ("lora_r", ["8", "16"])],
        eval_spec=eval_spec(team, cluster),
    )
    sweep = sweeps.submit(team.member("member"), found)
    scores = {1: 5.1, 2: 6.4, 3: 5.9, 4: 5.5}
    for run in sweep.runs.select_related("job", "eval_job"):
        finish(run.job)
        finish(run.eval_job)
        result_for(run.eval_job, run.job, scores[run.number])
    step(cluster)
    best = sweep.runs.get(number=2)

    url = live_server.url
    page.goto(f"{url}/accounts/login/?next=/sweeps/{sweep.pk}/")
    page.fill("#id_username", "member")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/sweeps/{sweep.pk}/")
    first = page.locator("[data-testid=sweep-table] tbody tr").first
    assert first.get_attribute("data-run") == "2" and "best" in (first.get_attribute("class") or "")
    assert page.locator("[data-testid=sweep-table] tbody tr").count() == 4
    page.click("[data-testid=sweep-table] th >> text=lora_r")
    page.wait_for_url("**sort=lora_r")
    assert page.locator("[data-testid=sweep-table] tbody tr").first.get_attribute("data-run") in ("1", "3")

    page.click("[data-testid=sweep-best] >> text=Lineage")
    page.wait_for_url(f"{url}/lineage/jobs/{best.job_id}/")
    graph = page.locator("[data-testid=lineage-graph] svg")
    assert graph.is_visible()
    for key in (f"dataset:{data.pk}", f"job:{best.job_id}", f"result:{best.eval_job.eval_result.pk}"):
        box = page.locator(f'[data-node="{key}"]')
        assert box.count() == 1 and box.bounding_box() is not None, key
    assert page.locator(".lineage-edge").count() >= 3
    text = page.locator("main").inner_text()
    for words in (
        "ichikara@v3",
        best.job.name,
        "learning_rate",
        "1e-05",
        "lora_r",
        "6.40",
    ):  # run 2: 1e-5 × 16
        assert words in text, (words, text)

    page.click(f'[data-node="dataset:{data.pk}"]')
    page.wait_for_url(f"{url}/datasets/{data.pk}/")
    assert page.locator("[data-node^='job:']").count() == 4  # every run of the sweep trained on it
    assert data.sha256 in page.locator("main").inner_text()
