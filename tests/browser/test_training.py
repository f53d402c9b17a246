"""A member starts an SFT run from a subteam template in the browser; the real `training.sft` runs on the
dev cluster's CPU, and the job's page turns Completed without a reload, showing the run's config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from demo.assets import templates
from scheduler import services
from scheduler.models import Cluster, Job
from tests.browser.test_jobs import sign_in
from tests.personas import Team
from tests.scheduler.conftest import (  # noqa: F401
    assets,
    cluster,
    devcluster_info,
    judge,
    run_until,
    training_cluster,
    worker,
)

pytestmark = [pytest.mark.browser, pytest.mark.training, pytest.mark.django_db(transaction=True)]


def test_a_member_runs_an_sft_job_from_a_template_and_sees_it_complete(
    live_server: Any,
    page: Any,
    team: Team,
    training_cluster: Cluster,  # noqa: F811
    assets: Any,  # noqa: F811
    run_until: Callable[..., None],  # noqa: F811
) -> None:
    fields = next(f for _s, name, _k, f in templates(assets) if name == "Tiny SFT (CPU smoke test)")
    template = services.save_template(
        team.member("lead"),
        subteam=team.sft,
        name="Tiny SFT",
        kind="sft",
        fields={**fields, "max_steps": "8"},
    )
    base = live_server.url
    sign_in(page, base, "member", "/jobs/train/?kind=sft")
    page.wait_for_url(f"{base}/jobs/train/?kind=sft")
    page.click(f"#templates >> text={template.name}")
    page.wait_for_url(f"{base}/jobs/train/?kind=sft&template={template.pk}")
    assert page.input_value("#id_model") == assets.model
    assert page.input_value("#id_subteam") == str(team.sft.pk)
    page.fill("#id_name", "browser-sft")

    with page.expect_response(lambda r: r.url.endswith("/jobs/train/preview/")):
        page.click("text=Preview config and script")
    page.locator('[data-testid="config-preview"]', has_text="max_steps: 8").wait_for()
    assert (
        "python -m training.sft --config run.yaml"
        in page.locator('[data-testid="script-preview"]').inner_text()
    )
    assert not Job.objects.exists()

    page.click("#training-form button[type=submit] >> text=Submit")
    page.wait_for_url(f"{base}/jobs/*/")
    job = Job.objects.get()
    assert (job.kind, job.name, job.owner) == ("sft", "browser-sft", team.member("member"))
    run_until(lambda: Job.objects.get(pk=job.pk).is_terminal, timeout=240, interval=1.0)
    job.refresh_from_db()
    assert job.state == Job.State.COMPLETED, (job.reason, job.exit_code)
    page.locator('#job-live[data-state="completed"]').wait_for(timeout=20_000)
    assert "max_steps: 8" in page.locator("#config").inner_text()
