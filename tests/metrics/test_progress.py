"""Progress before the first step, after requeues (speed and ETA from the current run segment only), at
the end of a run; and the loss chart's marks (alerts, restarts) read from the job's events."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.template.loader import render_to_string
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from metrics import marks
from metrics.keys import STEP_KEY, TOKENS_KEY, TOKENS_PER_S_KEY
from metrics.models import MetricPoint
from metrics.progress import job_progress
from metrics.templatetags.metrics_tags import metrics_progress
from scheduler.models import Job, JobEvent
from tests.metrics.conftest import MakeJob

T0 = dt.datetime(2026, 1, 5, 9, 0, tzinfo=dt.UTC)


def log(job: Job, key: str, points: list[tuple[int, float, dt.datetime]]) -> None:
    """Points as ingestion stores them; `seq` counts a step logged again (a resumed run)."""
    seen: dict[int, int] = {}
    rows = []
    for step, value, time in points:
        seq = seen[step] = seen.get(step, -1) + 1
        rows.append(MetricPoint(job=job, key=key, step=step, seq=seq, value=value, time=time))
    MetricPoint.objects.bulk_create(rows)


def log_steps(job: Job, steps: list[tuple[int, dt.datetime]]) -> None:
    log(job, STEP_KEY, [(s, s, t) for s, t in steps])
    log(job, TOKENS_KEY, [(s, s * 4096.0, t) for s, t in steps])


def test_before_the_first_step_the_bar_waits_empty(make_job: MakeJob) -> None:
    job = make_job()

    progress = metrics_progress(job)
    html = render_to_string("metrics/_progress.html", {"job": job, "progress": progress})

    assert job_progress(job) is None and not progress.started and progress.percent is None
    assert 'aria-valuenow="0.0"' in html and 'style="width: 0.0%"' in html
    assert 'data-progress-state="waiting"' in html and "waiting for the first step" in html
    assert "width: %" not in html and "width: 100" not in html


def test_a_requeued_run_counts_its_speed_from_the_current_segment(make_job: MakeJob) -> None:
    # First run: 100 steps at 1 step/s; requeued, an hour lost; the second run resumes from the
    # checkpoint at step 80 and goes at 2 steps/s.
    restart = T0 + dt.timedelta(seconds=100 + 3600)
    job = make_job(started_at=T0, running_since=restart, restarts=1)
    first = [(s, T0 + dt.timedelta(seconds=s)) for s in range(1, 101)]
    second = [(s, restart + dt.timedelta(seconds=(s - 80) / 2)) for s in range(80, 151)]
    log_steps(job, first + second)

    progress = job_progress(job)

    assert progress is not None and progress.restarts == 1
    assert progress.step == 150 and progress.tokens_seen == 150 * 4096  # carried on across the requeue
    assert progress.steps_per_s == pytest.approx(2.0)
    assert progress.eta_seconds == pytest.approx((300 - 150) / 2.0)
    html = render_to_string("metrics/_progress.html", {"job": job, "progress": progress})
    assert "<dd data-progress-restarts>1</dd>" in html and "data-progress-restarts-box hidden" not in html


def test_without_running_since_the_segment_starts_at_the_start(make_job: MakeJob) -> None:
    job = make_job(started_at=T0)
    log_steps(job, [(s, T0 + dt.timedelta(seconds=s * 4)) for s in range(1, 101)])

    progress = job_progress(job)

    assert progress is not None and progress.restarts == 0
    assert progress.steps_per_s == pytest.approx(0.25)


def test_a_short_finished_run_shows_done_and_its_last_real_rate(make_job: MakeJob) -> None:
    job = make_job(state=Job.State.COMPLETED, started_at=T0)
    log_steps(job, [(s, T0 + dt.timedelta(seconds=s / 100)) for s in range(10, 291, 10)])
    log(job, TOKENS_PER_S_KEY, [(280, 5000.0, T0), (290, 0.0, T0)])  # the last interval read 0

    progress = job_progress(job)

    assert progress is not None
    assert progress.percent == 100.0 and progress.eta_seconds == 0.0
    assert progress.tokens_per_s == 5000.0


def test_without_any_rate_the_average_is_shown(make_job: MakeJob) -> None:
    job = make_job(state=Job.State.COMPLETED, started_at=T0)
    log_steps(job, [(s, T0 + dt.timedelta(seconds=s)) for s in range(1, 301)])
    log(job, TOKENS_PER_S_KEY, [(300, 0.0, T0)])

    progress = job_progress(job)

    assert progress is not None and progress.tokens_per_s == pytest.approx(4096.0)


def test_marks_are_the_alert_steps_and_the_steps_reached_before_each_restart(make_job: MakeJob) -> None:
    job = make_job(started_at=T0)
    log_steps(job, [(s, T0 + dt.timedelta(seconds=s)) for s in range(1, 201)])
    JobEvent.objects.create(
        job=job, kind=JobEvent.Kind.LOSS_ALERT, message="loss spike at step 150: 42 (median 1.2, z 90.0)"
    )
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.LOSS_ALERT, message="loss is nan at step 190")
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.RESTARTED, at=T0 + dt.timedelta(seconds=120.5))
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.STATE, at=timezone.now())

    expected = [
        {"step": 120, "kind": "restart"},
        {"step": 150, "kind": "alert"},
        {"step": 190, "kind": "alert"},
    ]
    assert marks.for_job(job) == expected
    events = list(JobEvent.objects.filter(job=job))
    with CaptureQueriesContext(connection) as queries:
        assert marks.for_job(job, events) == expected
    assert len(queries) == 1  # the restarts' steps, in one query
