"""A real worker process that dies by SIGKILL right after it commits a job's final state.

Run as `python -m tests.slackbot.killed_worker` with DATABASE_URL pointing at the test database: it
runs the scheduler's cycle until the commit that ends a job, and the first thing after that commit
(the first `on_commit` callback the transition registers) is SIGKILL of this very process. Nothing
written after the commit survives, as when the machine dies at that instant.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    from django.db import transaction

    from scheduler import live, transitions
    from scheduler.models import Job
    from scheduler.worker import Worker

    real_push = live.push

    def push_then_die(job_id: object, subteam_id: int, **fields: Any) -> None:
        if fields.get("state") in Job.TERMINAL_STATES:
            transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        real_push(job_id, subteam_id, **fields)

    transitions.live.push = push_then_die  # type: ignore[assignment]
    worker = Worker(name="doomed")
    until = time.monotonic() + 120
    while time.monotonic() < until:
        worker.cycle()
        time.sleep(0.3)
    sys.exit("the job never ended")


if __name__ == "__main__":
    main()
