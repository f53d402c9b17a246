"""A real browser on the job panel and the subteam dashboard: the charts and the progress bar move,
without a reload, while points of a real W&B run file arrive (ingested here from a local copy that
grows; the whole path with a job on the dev cluster is tests/browser/test_live_dashboard.py)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest

from metrics import ingest, push, store, wandb_file
from metrics.models import MetricPoint
from scheduler.models import JobEvent
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
    first_step = store.latest(job.pk, "train/global_step").step  # type: ignore[union-attr]

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
    over.scroll_into_view_if_needed()  # the mouse acts on the viewport: the chart must be on screen
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


def test_the_loss_chart_marks_alerts_and_restarts_and_follows_the_alert_link(
    asgi_server: str,
    page: Any,  # noqa: F811
    team: Team,
    make_job: MakeJob,
    files: LocalRunFiles,
    run_file: bytes,
) -> None:
    job = make_job(name="sft-alerts", kind="sft", restarts=1)
    files.place(job, run_file)
    in_thread(lambda: ingest.ingest_job(job, files))
    reached = MetricPoint.objects.get(job=job, key="train/global_step", step=100).time
    assert reached is not None
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.LOSS_ALERT, message="loss spike at step 150: 42")
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.RESTARTED, at=reached + dt.timedelta(microseconds=1))

    sign_in(page, asgi_server, job.get_absolute_url())
    page.goto(f"{asgi_server}{job.get_absolute_url()}#step-150")
    chart = page.locator('[data-metric-chart][data-key="train/loss"]')
    chart.locator("canvas").wait_for()
    page.wait_for_function("() => document.documentElement.dataset.metricLive === 'open'")

    # From the page: the alert and the restart at the step the run had reached, in the legend.
    marks = page.evaluate("window.TanukiMetrics.charts.find((c) => c.key === 'train/loss').marks")
    assert {"step": 150, "kind": "alert"} in marks and {"step": 100, "kind": "restart"} in marks
    legend = chart.locator(".metric-legend-mark")
    assert legend.all_inner_texts() == ["loss alert", "restart"]
    # The alert's mark is drawn: the canvas is the alert's red at step 150, mid-height.
    red = page.evaluate(
        """() => {
          const u = window.TanukiMetrics.charts.find((c) => c.key === 'train/loss').plot;
          const x = Math.round(u.valToPos(150, 'x', true));
          const y = Math.round(u.bbox.top + u.bbox.height * 0.75);
          return Array.from(u.ctx.getImageData(x, y, 1, 1).data);
        }"""
    )
    assert red[0] > 150 and red[1] < 100 and red[3] > 0
    # The Slack link's anchor: scrolled to the chart, step highlighted.
    page.wait_for_function(
        "() => document.querySelector('[data-key=\"train/loss\"]').dataset.highlightStep === '150'"
    )
    assert chart.is_visible() and chart.evaluate("(el) => el.getBoundingClientRect().top") < 900

    # Live: an alert pushed while the page is open is marked without a reload.
    in_thread(lambda: push.push_job(job, alert={"step": 260, "value": 9.5}))
    page.wait_for_function(
        "() => window.TanukiMetrics.charts.find((c) => c.key === 'train/loss').marks"
        ".some((m) => m.step === 260 && m.kind === 'alert')"
    )


def test_the_learning_rate_axis_ticks_are_distinct(
    asgi_server: str,
    page: Any,  # noqa: F811
    team: Team,
    make_job: MakeJob,
    files: LocalRunFiles,
    run_file: bytes,
) -> None:
    job = make_job(name="sft-lr", kind="sft")
    files.place(job, run_file)
    in_thread(lambda: ingest.ingest_job(job, files))

    sign_in(page, asgi_server, job.get_absolute_url())
    page.locator('[data-key="train/learning_rate"] canvas').wait_for()
    page.wait_for_function("() => window.TanukiMetrics.charts.every((c) => c.plot && c.plot.axes[1]._values)")

    for key in ("train/learning_rate", "train/loss", "train/grad_norm"):
        labels = page.evaluate(
            f"window.TanukiMetrics.charts.find((c) => c.key === '{key}').plot.axes[1]._values"
        )
        assert len(labels) >= 3 and len(set(labels)) == len(labels), (key, labels)
    lr = page.evaluate(
        "window.TanukiMetrics.charts.find((c) => c.key === 'train/learning_rate').plot.axes[1]._values"
    )
    assert all("e-" in label for label in lr if label != "0"), lr  # 1e-4 and below: exponent notation
    assert page.evaluate("window.TanukiMetrics.formatTick(0.00005, 1)") == "5e-5"
