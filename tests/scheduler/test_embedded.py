"""The embedded deployment: the scheduler loop runs in the server process and picks up new jobs."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from scheduler import embedded, services
from scheduler.models import Cluster, Job
from tests.personas import Team


@pytest.mark.django_db(transaction=True)
def test_the_embedded_loop_submits_and_finishes_a_job(team: Team, cluster: Cluster) -> None:
    thread = embedded.start()
    try:
        assert embedded.start() is thread  # once per process
        job = services.submit_job(
            team.member("member"),
            services.JobSpec(subteam=team.sft, cluster=cluster, name="embedded", command="echo embedded"),
        )
        deadline = time.monotonic() + 60
        while not Job.objects.get(pk=job.pk).is_terminal:
            assert time.monotonic() < deadline, "the embedded scheduler did not finish the job in 60 s"
            time.sleep(0.5)
        job.refresh_from_db()
        assert job.state == Job.State.COMPLETED
        assert job.exit_code == 0
    finally:
        embedded.stop()
        embedded._stop.clear()
        embedded._started = None
        connection.close()
