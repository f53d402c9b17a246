"""A worker killed (SIGKILL, a real process) right after it commits a job's final state: the Slack
message for that state is still delivered, once, by the next worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from scheduler import services
from scheduler.models import Cluster, Job, JobEvent
from scheduler.worker import Worker
from slackbot.models import Notification
from tests.personas import Team
from tests.scheduler.conftest import cluster, devcluster_info  # noqa: F401
from tests.slackbot.fakeslack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_after_the_final_commit_loses_no_message_and_sends_none_twice(
    team: Team,
    cluster: Cluster,  # noqa: F811 - the dev cluster fixture, imported above
    slack_settings: Any,
    fake_slack: FakeSlack,
) -> None:
    job = services.submit_job(
        team.member("member"),
        services.JobSpec(subteam=team.sft, cluster=cluster, name="dies-with-its-worker", command="exit 3"),
    )
    env = {**os.environ, "DATABASE_URL": database_url(), "SLACK_BOT_TOKEN": "", "PYTHONPATH": str(ROOT)}
    env.pop("TZ", None)
    doomed = subprocess.run(
        [sys.executable, "-m", "tests.slackbot.killed_worker"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert doomed.returncode == -signal.SIGKILL, doomed.stderr[-3000:]
    job.refresh_from_db()
    assert job.state == Job.State.FAILED and job.exit_code == 3
    assert JobEvent.objects.filter(job=job, to_state=Job.State.FAILED).count() == 1
    assert not Notification.objects.exists()  # the dead worker got no further than the commit

    successor = Worker(name="successor")
    for _ in range(3):  # the next worker's cycles, and again: delivered once
        successor.cycle()
    texts = [m["text"] for m in fake_slack.messages]
    assert len(texts) == 1 and "dies-with-its-worker" in texts[0], texts
    notification = Notification.objects.get()
    assert notification.event_key == f"job:{job.pk}:failed" and notification.sent_at is not None
