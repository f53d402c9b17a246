"""axe-core over the main pages, in English and Japanese: no serious or critical violation anywhere.

axe-core is vendored under tests/browser/vendor/axe-core/ (a test tool, never served). The portal's CSP
refuses inline scripts, so `page.add_script_tag` (which inlines the file) is blocked; the file is run
with `page.evaluate` instead, which the page's policy does not govern. A failure lists each violation
with its rule, impact and the elements it found, so the fix can start from the message.

The pages come from `populated_site`, which the phone-sized tests (test_mobile.py) share: a week of the
fine-tuning subteam, a running training job with long logs and a real W&B run ingested up to about a
third, a failed job with its diagnosis, a cluster with a node table, bookings, results and a weekly report.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from metrics import ingest, wandb_file
from portal.models import Goal, Milestone
from reports import weeks
from scheduler import triage
from scheduler.models import Cluster, Job, JobLogChunk, Node
from tests.metrics.conftest import REMOTE_WORK_DIR, LocalRunFiles, run_file  # noqa: F401
from tests.metrics.test_browser import in_thread
from tests.personas import PASSWORD, Team, grant_cluster_accounts
from tests.reports.conftest import make_week
from tests.scheduler.test_triage import RECORDED, store_log
from tests.scheduler.test_web import finish, make_fake_cluster, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")
SKIP_LINK = {"en-US": "Skip to content", "ja-JP": "本文へスキップ"}


@dataclasses.dataclass
class Site:
    """The paths of the pages under test, by name."""

    pages: dict[str, str]
    running: Job
    failed: Job
    cluster: Cluster


def log_lines(count: int, prefix: str) -> str:
    return "".join(
        f"{prefix} step {i:5d} | loss {2.5 - i / (count * 2):.4f} | lr 1.0e-04 | tokens/s 41,230\n"
        for i in range(count)
    )


def populated_site(team: Team, run: bytes, tmp_path: Path) -> Site:
    """Every kind of page with something on it (see the module's docstring)."""
    week = weeks.this_week() - dt.timedelta(days=7)
    made = make_week(team, week)
    today = timezone.localdate()
    for title, status, start, due in (
        ("Release the 8B SFT model", Goal.Status.ON_TRACK, -20, 30),
        ("MT-Bench 7.5 in Japanese", Goal.Status.AT_RISK, -10, 20),
        ("Tokenizer for code", Goal.Status.ACHIEVED, -40, -5),
        ("Distil the 70B teacher", Goal.Status.DROPPED, -30, 10),
    ):
        Goal.objects.create(
            subteam=team.sft,
            title=title,
            status=status,
            start_date=today + dt.timedelta(start),
            due_date=today + dt.timedelta(due),
        )
    Milestone.objects.create(subteam=team.sft, title="Data frozen", date=today + dt.timedelta(3))
    Milestone.objects.create(subteam=team.sft, title="First eval", date=today - dt.timedelta(2), done=True)

    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    for i in range(3, 9):
        Node.objects.create(
            cluster=cluster,
            name=f"gpu-node-{i:03d}",
            state="ALLOCATED" if i % 2 else "IDLE",
            gpus_total=8,
            gpus_alloc=8 if i % 2 else 0,
            cpus_total=128,
            partitions="gpu,debug,long",
        )

    failed = finish(
        submit(team, cluster, name="sft-8b-full"), Job.State.FAILED, exit_code=1, node_list="node1"
    )
    store_log(failed, (RECORDED / "cuda_oom.log").read_text())
    store_log(failed, log_lines(120, "[rank0]"), stream=JobLogChunk.Stream.STDOUT)
    triage.diagnose(Job.objects.get(pk=failed.pk))
    failed.refresh_from_db()
    assert failed.diagnosis is not None

    # The run directory is read from a local copy (tests/metrics/conftest.py), as the worker reads it over SFTP.
    local = Cluster.objects.create(
        name="local", host="127.0.0.1", username="tanuki", work_dir=REMOTE_WORK_DIR
    )
    running = Job.objects.create(
        id=uuid.uuid4(),
        name="sft-8b-lora-r16",
        kind="sft",
        owner=team.member("member"),
        subteam=team.sft,
        cluster=local,
        command="python -m training.runner run.yaml",
        script="#!/bin/bash\n#SBATCH --gres=gpu:8\npython -m training.runner run.yaml\n",
        config_yaml="training:\n  max_steps: 300\n",
        partition="gpu",
        time_limit_minutes=600,
        gpus_per_node=8,
        gpus=8,
        state=Job.State.RUNNING,
        slurm_job_id="4343",
        submitted_at=timezone.now() - dt.timedelta(minutes=30),
        started_at=timezone.now() - dt.timedelta(minutes=25),
        node_list="node1",
        parameters={"config": {"training": {"max_steps": 300}}},
    )
    store_log(running, log_lines(400, "[rank0]"), stream=JobLogChunk.Stream.STDOUT)
    store_log(running, log_lines(200, "warning:"), stream=JobLogChunk.Stream.STDERR)
    Job.objects.filter(pk=running.pk).update(logs_final=False)
    files = LocalRunFiles(tmp_path)
    path = files.place(running, run)
    files.visible[path] = wandb_file.parse(run[: len(run) // 3]).offset
    in_thread(lambda: ingest.ingest_job(running, files))  # off Playwright's event loop, as pushes need

    report = f"/reports/teams/{team.sft.slug}/{week.isoformat()}/"
    pages = {
        "overview": "/",
        "subteams": "/subteams/",
        "subteam": f"/subteams/{team.sft.slug}/",
        "member": "/members/member/",
        "tasks": f"/tasks/?subteam={team.sft.slug}",
        "task": f"/tasks/{made.done.pk}/",
        "goals": "/goals/",
        "goal": f"/goals/{made.goal.pk}/",
        "timeline-week": "/timeline/",
        "timeline-month": "/timeline/?scale=month",
        "jobs": "/jobs/",
        "job-running": f"/jobs/{running.pk}/",
        "job-failed": f"/jobs/{failed.pk}/",
        "job-form": "/jobs/new/",
        "training-form": "/jobs/train/?kind=sft",
        "cluster": f"/clusters/{cluster.pk}/",
        "lending": "/gpus/",
        "lending-form": "/gpus/new/",
        "booking": f"/gpus/{made.booking.pk}/",
        "lending-calendar": "/gpus/calendar/",
        "leaderboard": "/leaderboard/",
        "result": f"/evals/results/{made.best.pk}/",
        "know-how": "/learnings/",
        "members": "/members/",
        "pipelines": "/pipelines/",
        "reports": "/reports/",
        "report": report,
        "agenda": "/reports/agenda/",
    }
    return Site(pages=pages, running=running, failed=failed, cluster=cluster)


def sign_in(page: Any, base: str, username: str = "lead") -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base}/")


def hold_live_pages(page: Any) -> None:
    """A running job's page swaps its live block every 3 s: answer the polls with 204 (htmx keeps the
    page as it is), so that axe and the layout checks see one steady page."""

    def answer(route: Any) -> None:
        if route.request.headers.get("hx-request") == "true" and route.request.method == "GET":
            route.fulfill(status=204, body="")
        else:
            route.continue_()

    page.route("**/jobs/*/", answer)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate(
        """async () => {
            const result = await axe.run(document, {
                runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
                resultTypes: ["violations"],
            });
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help,
                targets: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
            }));
        }"""
    )
    return list(result)


def describe(found: dict[str, list[dict[str, Any]]]) -> str:
    if not any(found.values()):
        return f"none on {len(found)} pages"
    lines = []
    for name, violations in found.items():
        for v in violations:
            lines.append(f"{name}: {v['id']} ({v['impact']}) {v['help']}")
            for node in v["targets"][:6]:
                summary = " ".join(node["summary"].split())[:220]
                lines.append(f"    {node['target']}: {summary}")
            if len(v["targets"]) > 6:
                lines.append(f"    … and {len(v['targets']) - 6} more")
    return "\n".join(lines)


@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_the_main_pages_have_no_serious_accessibility_violations(
    live_server: Any,
    browser: Any,
    team: Team,
    run_file: bytes,  # noqa: F811
    tmp_path: Path,
    locale: str,
) -> None:
    site = populated_site(team, run_file, tmp_path)
    base = live_server.url
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        hold_live_pages(page)
        page.goto(f"{base}/accounts/login/")
        found = {"sign-in": axe_violations(page)}
        sign_in(page, base)
        # The first tab stop skips the header (a dozen links and the user's box) to the content.
        page.keyboard.press("Tab")
        skip = page.evaluate(
            "[document.activeElement.getAttribute('href'), document.activeElement.textContent]"
        )
        assert skip == ["#content", SKIP_LINK[locale]]
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "content"
        for name, path in site.pages.items():
            response = page.goto(f"{base}{path}")
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("load")
            found[name] = axe_violations(page)
    finally:
        context.close()
    blocking = {
        name: [v for v in violations if v["impact"] in BLOCKING] for name, violations in found.items()
    }
    blocking = {name: violations for name, violations in blocking.items() if violations}
    print(f"\naxe ({locale}), every violation found:\n{describe(found)}")
    assert not blocking, f"axe ({locale}): serious or critical violations\n{describe(blocking)}"
