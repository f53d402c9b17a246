"""The loss-spike watch: the robust z-score rule on synthetic series, and on a real W&B run file written
by the wandb SDK (a spike, then NaN losses) read through ingestion: each alert is recorded once, told
to the subteam's Slack channel naming the owner, shown on the job's timeline, and used by the triage."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from metrics import ingest, watch
from scheduler import triage
from scheduler.models import Job, JobEvent, JobLogChunk
from slackbot import outbox
from slackbot.models import Notification
from tests.metrics.conftest import ROOT, LocalRunFiles, MakeJob
from tests.personas import Team


def noisy(n: int, base: float = 2.0) -> list[float]:
    return [base + 0.02 * math.sin(i) for i in range(n)]


def test_a_jump_far_above_the_recent_losses_is_a_spike() -> None:
    history = noisy(60)
    alerts = watch.find(history, [(61, 2.01), (62, 9.5), (63, 2.0)], z_limit=8, size=50)
    assert [(a.step, a.value) for a in alerts] == [(62, 9.5)]
    assert (
        alerts[0].median is not None
        and abs(alerts[0].median - 2.0) < 0.05
        and alerts[0].z
        and alerts[0].z > 8
    )


def test_a_drop_small_noise_and_too_little_history_are_not() -> None:
    assert watch.find(noisy(60), [(61, 0.5), (62, 2.03)], z_limit=8, size=50) == []  # a fast drop is good
    assert watch.find(noisy(10), [(11, 9.5)], z_limit=8, size=50) == []  # not judged before 20 losses


def test_one_alert_per_episode_then_quiet_for_a_window() -> None:
    new = [(61 + i, 9.0 + i) for i in range(5)] + [(200, 30.0)]
    alerts = watch.find(noisy(60), new, z_limit=8, size=50)
    assert [a.step for a in alerts] == [61, 200]
    assert watch.find(noisy(60), [(70, 9.0)], quiet_until=100, z_limit=8, size=50) == []


def test_not_a_number_is_always_an_alert() -> None:
    alerts = watch.find([], [(5, math.nan), (6, math.inf)], z_limit=8, size=50)
    assert [a.step for a in alerts] == [5, 6] and not alerts[0].finite
    assert alerts[0].message() == "loss is nan at step 5"


@pytest.fixture
def diverging_run(tmp_path: Path) -> bytes:
    """A real run: a smooth loss, a spike at step 120, NaN from step 200 on (300 steps)."""
    argv = [sys.executable, "-m", "tests.metrics.make_run", str(tmp_path), "divergerun1", "300", "120", "200"]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=600)
    (path,) = tmp_path.glob("wandb/offline-run-*-divergerun1/run-divergerun1.wandb")
    return path.read_bytes()


def test_a_real_run_that_spikes_then_diverges_is_flagged_once_each_and_told(
    team: Team, make_job: MakeJob, files: LocalRunFiles, diverging_run: bytes
) -> None:
    training_job = make_job()
    files.place(training_job, diverging_run)
    while ingest.ingest_job(training_job, files):
        pass
    ingest.ingest_job(training_job, files)  # read again: nothing new, no second alert
    alerts = list(
        JobEvent.objects.filter(job=training_job, kind=JobEvent.Kind.LOSS_ALERT).order_by("at", "id")
    )
    messages = [a.message for a in alerts]
    assert messages[0].startswith("loss spike at step 120: 42 ")
    assert messages[1] == "loss is nan at step 200"
    assert all(m.startswith("loss is nan at step ") for m in messages[1:])
    # Told once per alert to the subteam's channel, naming the owner.
    outbox.collect()
    told = Notification.objects.filter(event_key__startswith=f"job:{training_job.pk}:loss:")
    assert told.count() == len(alerts) and {n.channel for n in told} == {training_job.subteam.slack_channel}
    assert "loss spike at step 120" in told.order_by("id").first().text  # type: ignore[union-attr]
    # The job's timeline says so; if the run then fails without a word in its log, triage knows why.
    page = team.client("member").get(f"/jobs/{training_job.pk}/").content.decode()
    assert "Loss spike or NaN" in page and "loss spike at step 120" in page
    Job.objects.filter(pk=training_job.pk).update(state=Job.State.FAILED, exit_code=1, logs_final=True)
    JobLogChunk.objects.create(job=training_job, stream="stderr", offset=0, data=b"killed\n", size=7)
    assert triage.diagnose(Job.objects.get(pk=training_job.pk)).code == "loss_nan"
