"""The job panel include and the subteam dashboard's runs panel render progress and chart slots."""

from __future__ import annotations

from django.template.loader import render_to_string
from django.test import RequestFactory

from metrics import ingest
from scheduler.models import Job
from tests.metrics.conftest import LocalRunFiles, MakeJob
from tests.personas import Team


def test_the_job_panel_shows_progress_and_four_charts(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job()
    files.place(job, run_file)
    ingest.ingest_job(job, files)
    request = RequestFactory().get("/")
    request.user = team.users["member"]

    html = render_to_string("metrics/_job_panel.html", {"job": job}, request=request)

    assert f'data-metric-ws="/ws/jobs/{job.pk}/"' in html
    for key in ("train/loss", "train/learning_rate", "train/grad_norm", "perf/tokens_per_s"):
        assert f'data-jobs="{job.pk}" data-key="{key}"' in html
    assert "<span data-progress-step>300</span> / <span data-progress-max>300</span>" in html
    assert "width: 100.0%" in html
    assert "1.2M" in html  # 300 steps x 4,096 tokens
    assert "metrics/vendor/uplot/uPlot.iife.min.js" in html and "cdn" not in html.lower()


def test_the_subteam_dashboard_lists_its_training_runs(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    running = make_job(name="sft-running", kind="sft")
    done = make_job(name="sft-done", state=Job.State.COMPLETED)
    make_job(name="pretrain-elsewhere", subteam=team.pretrain)
    files.place(done, run_file)
    ingest.ingest_job(done, files)

    response = team.client("member").get(f"/subteams/{team.sft.slug}/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-metric-ws="/ws/subteams/sft/"' in html
    panel = html[html.index("data-metric-ws") :]
    assert "sft-running" in panel and "sft-done" in panel and "pretrain-elsewhere" not in panel
    assert panel.index("sft-running") < panel.index("sft-done")  # running runs first
    assert f'data-jobs="{running.pk},{done.pk}" data-key="train/loss"' in html


def test_a_subteam_without_training_runs_shows_no_panel(team: Team) -> None:
    html = team.client("member").get(f"/subteams/{team.pretrain.slug}/").content.decode()
    assert "data-metric-ws" not in html


def test_the_job_page_of_a_training_run_carries_the_panel(
    team: Team, make_job: MakeJob, files: LocalRunFiles, run_file: bytes
) -> None:
    job = make_job(kind="sft")
    files.place(job, run_file)
    ingest.ingest_job(job, files)

    html = team.client("other").get(f"/jobs/{job.pk}/").content.decode()

    assert f'data-metric-ws="/ws/jobs/{job.pk}/"' in html
    assert f'data-jobs="{job.pk}" data-key="train/grad_norm"' in html
