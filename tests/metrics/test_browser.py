"""A real browser on the job panel and the subteam dashboard: the charts and the progress bar move,
without a reload, while points of a real W&B run file arrive (ingested here from a local copy that
grows; the whole path with a job on the dev cluster is tests/browser/test_live_dashboard.py)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from metrics import ingest, wandb_file
from tests.browser.conftest import browser, page  # noqa: F401
from tests.metrics.conftest import LocalRunFiles, MakeJob
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def in_thread(function: Any) -> None:
    """Playwright's sync API keeps an event loop in this thread: push from a plain one."""

    def run() -> None:
        from django.db import connection

        try:
            function()
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=60)


def sign_in(page: Any, base: str, next_url: str) -> None:  # noqa: F811
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", "member")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_url}")


def test_the_subteam_dashboard_moves_while_points_arrive(
    asgi_server: str,
    page: Any,  # noqa: F811
    team: Team,
    make_job: MakeJob,
    files: LocalRunFiles,
    run_file: bytes,
) -> None:
    job = make_job(name="sft-live", kind="sft")
    path = files.place(job, run_file)
    records = wandb_file.parse(run_file[:20000]).offset
    files.visible[path] = records
    in_thread(lambda: ingest.ingest_job(job, files))
    first_step = ingest.store.latest(job.pk, "train/global_step").step  # type: ignore[union-attr]

    sign_in(page, asgi_server, f"/subteams/{team.sft.slug}/")
    bar = page.locator(f'[data-progress-for="{job.pk}"] [data-progress-bar]')
    assert float(bar.get_attribute("aria-valuenow")) == pytest.approx(first_step / 300 * 100, abs=0.1)
    page.locator("[data-metric-chart] canvas").first.wait_for()
    page.wait_for_function("() => document.documentElement.dataset.metricLive === 'open'")
    page.evaluate(
        "window.__updates = 0; document.addEventListener('metrics:update', () => window.__updates++)"
    )

    files.visible[path] = len(run_file)
    in_thread(lambda: ingest.ingest_job(job, files))

    page.wait_for_function("() => window.__updates > 0")
    step = page.locator(f'[data-progress-for="{job.pk}"] [data-progress-step]')
    assert step.inner_text() == "300"
    assert bar.get_attribute("aria-valuenow") == "100.0"
    points = page.evaluate("window.TanukiMetrics.charts[0].plot.data[0].length")
    assert points == 300  # the chart now holds every step, appended live

    # Dragging across the chart re-queries that step range; "Reset zoom" goes back.
    over = page.locator("[data-metric-chart] .u-over").first
    box = over.bounding_box()
    with page.expect_response(lambda r: "min_step=" in r.url) as zoomed:
        page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
    series = zoomed.value.json()["series"][0]
    assert series["width"] == 1 and 60 < series["steps"][0] < series["steps"][-1] < 240
    reset = page.locator("[data-metric-chart] button", has_text="Reset zoom").first
    reset.click()
    reset.wait_for(state="hidden")
