"""Sign in, submit `echo hi; exit 3` from the form to the real dev cluster, let the worker run it, and
watch the job's page turn to Failed with exit code 3 without reloading (htmx polling), then after a
reload too, with its stdout read back from the cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from scheduler.models import Cluster, Job
from tests.personas import PASSWORD, Team
from tests.scheduler.conftest import cluster, devcluster_info, run_until, worker  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, base: str, username: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_a_member_submits_a_failing_job_and_sees_it_fail(
    live_server: Any,
    page: Any,
    team: Team,
    cluster: Cluster,  # noqa: F811
    run_until: Callable[..., None],  # noqa: F811
) -> None:
    base = live_server.url
    sign_in(page, base, "member", "/jobs/new/")
    page.wait_for_url(f"{base}/jobs/new/")

    page.select_option("#id_subteam", label="Fine-tuning")
    assert page.input_value("#id_cluster") == str(cluster.pk)  # the only cluster is preselected
    page.fill("#id_name", "says-hi-then-fails")
    page.fill("#id_command", "echo hi; exit 3")
    page.fill("#id_gpus_per_node", "1")
    page.fill("#id_time_limit_minutes", "5")

    # The preview (htmx) shows the script first; nothing is recorded yet.
    with page.expect_response(lambda r: r.url.endswith("/jobs/preview/")) as previewed:
        page.click("text=Preview the script")
    assert previewed.value.request.headers.get("hx-request") == "true"
    page.locator('[data-testid="script-preview"]', has_text="echo hi; exit 3").wait_for()
    assert not Job.objects.exists()

    page.click("#job-form button[type=submit] >> text=Submit")
    page.wait_for_url(f"{base}/jobs/*/")
    job = Job.objects.get()
    assert page.url == f"{base}/jobs/{job.pk}/"
    assert (job.owner, job.subteam, job.command) == (team.member("member"), team.sft, "echo hi; exit 3")
    assert page.locator("#job-live").get_attribute("data-state") == "submitting"

    run_until(lambda: Job.objects.get(pk=job.pk).is_terminal, timeout=90)

    # The page polls every 3 s while the job is live: it turns Failed without a reload, then stops.
    page.locator('#job-live[data-state="failed"]').wait_for(timeout=20_000)
    assert page.locator("#job-live .pagehead .badge").first.inner_text() == "Failed"
    assert page.locator("#exit-code").inner_text().startswith("3")
    assert page.locator("#job-live").get_attribute("hx-trigger") is None

    run_until(lambda: Job.objects.get(pk=job.pk).logs_final, timeout=30)  # stdout read back too
    page.reload()
    assert page.locator("#job-live .pagehead .badge").first.inner_text() == "Failed"
    assert page.locator('[data-testid="stdout"]').inner_text().strip() == "hi"
    assert page.locator("#exit-code").inner_text().startswith("3")
    job.refresh_from_db()
    assert (job.state, job.exit_code) == (Job.State.FAILED, 3)
    assert job.slurm_job_id.isdigit()
    assert page.locator("#facts").inner_text().count(job.slurm_job_id) >= 1

    # The list shows it too, red-ish, with its exit code.
    page.goto(f"{base}/jobs/?owner=me")
    row = page.locator(f"#job-{job.pk}")
    assert row.locator(".badge.state-failed").inner_text() == "Failed"
    assert row.locator("td").last.inner_text() == "3"


def test_a_member_cancels_a_job_from_its_page_with_htmx(live_server: Any, page: Any, team: Team) -> None:
    from tests.personas import grant_cluster_accounts
    from tests.scheduler.test_web import make_fake_cluster, submit

    fake = make_fake_cluster()
    grant_cluster_accounts(team, fake)
    job = submit(team, fake, name="not-needed")  # never sent: no worker runs here
    base = live_server.url
    sign_in(page, base, "member", f"/jobs/{job.pk}/")
    page.wait_for_url(f"{base}/jobs/{job.pk}/")

    page.once("dialog", lambda dialog: dialog.accept())
    with page.expect_response(lambda r: r.url.endswith(f"/jobs/{job.pk}/cancel/")) as cancelled:
        page.click("text=Cancel job")
    assert cancelled.value.request.headers.get("hx-request") == "true"
    page.locator('#job-live[data-state="cancelled"]').wait_for()
    assert page.locator("text=Cancel job").count() == 0
    job.refresh_from_db()
    assert job.state == Job.State.CANCELLED
