"""The whole live path: a tiny SFT job runs on the dev cluster, the worker tails its W&B run file over
SFTP, and the subteam dashboard open in Debian's chromium shows the progress bar and the loss chart
move without a reload (websocket push through the channel layer)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from metrics.models import MetricPoint
from scheduler import services
from scheduler.models import Cluster, Job
from scheduler.training_jobs import TrainingRequest
from scheduler.worker import Worker
from tests.browser.conftest import browser, page  # noqa: F401
from tests.metrics.test_browser import sign_in
from tests.personas import Team
from tests.scheduler.conftest import (  # noqa: F401
    assets,
    cluster,
    devcluster_info,
    judge,
    training_cluster,
)

pytestmark = [pytest.mark.browser, pytest.mark.training, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker_thread() -> Iterator[None]:
    """The scheduler's worker polling in the background, as inside the server in the demo."""
    stop = threading.Event()
    worker = Worker(name="live-test")

    def loop() -> None:
        try:
            while not stop.is_set():
                worker.cycle()
                stop.wait(0.5)
        finally:
            worker.release_claims()
            worker.pool.close_all()
            connection.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=30)


def test_the_subteam_dashboard_follows_a_running_job_on_the_cluster(
    asgi_server: str,
    page: Any,  # noqa: F811
    team: Team,
    training_cluster: Cluster,  # noqa: F811
    assets: Any,  # noqa: F811
    worker_thread: None,
) -> None:
    request = TrainingRequest(
        kind="sft",
        model=assets.model,
        train_files=[assets.sft_data],
        learning_rate=5e-3,
        max_steps=3000,
        micro_batch_size=4,
        max_length=64,
        dtype="fp32",
        use_cpu=True,
        wandb_mode="offline",
        save_steps=100000,
        extra_yaml="training:\n  logging_steps: 1\n",
    )
    job = services.submit_job(
        team.member("member"),
        services.JobSpec(
            subteam=team.sft,
            cluster=training_cluster,
            name="live-sft",
            command="",
            kind="sft",
            training=request,
            time_limit_minutes=10,
        ),
    )
    deadline = time.monotonic() + 180
    while not MetricPoint.objects.filter(job=job, key="train/loss").exists():
        assert time.monotonic() < deadline, Job.objects.get(pk=job.pk).state
        time.sleep(0.5)

    sign_in(page, asgi_server, f"/subteams/{team.sft.slug}/")
    page.wait_for_function("() => document.documentElement.dataset.metricLive === 'open'")
    bar = page.locator(f'[data-progress-for="{job.pk}"] [data-progress-bar]')
    first = float(bar.get_attribute("aria-valuenow") or 0)
    assert first < 100
    page.locator("[data-metric-chart] canvas").first.wait_for()
    points_at_load = page.evaluate("window.TanukiMetrics.charts[0].plot.data[0].length")
    page.evaluate("window.__sameDocument = true")  # gone if anything reloaded the page
    # No reload from here on: the bar and the chart follow the run as the worker reads it.
    page.wait_for_function(
        f"""() => {{
            const bar = document.querySelector('[data-progress-for="{job.pk}"] [data-progress-bar]');
            return bar && parseFloat(bar.getAttribute('aria-valuenow')) > {first};
        }}""",
        timeout=60_000,
    )
    page.wait_for_function(
        f"() => window.TanukiMetrics.charts[0].plot.data[0].length > {points_at_load}", timeout=60_000
    )
    assert page.evaluate("window.__sameDocument === true")
