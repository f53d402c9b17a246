"""`manage.py run_scheduler`: the worker that submits, tracks and reads logs of jobs on every cluster."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from scheduler import services
from scheduler.worker import Worker


class Command(BaseCommand):
    help = "Run the scheduler loop until SIGTERM/SIGINT (or once, with --once)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Run one cycle and exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        worker = Worker()
        if options["once"]:
            worker.cycle()
            for stats in worker.last_stats.values():
                self.stdout.write(
                    f"{stats.cluster}: {stats.commands} commands, {stats.submitted} submitted, "
                    f"{stats.transitions} state changes, {stats.tracked} tracked"
                    + (f", errors: {'; '.join(stats.errors)}" if stats.errors else "")
                )
            worker.release_claims()
            return
        stop = threading.Event()

        def request_stop(signum: int, frame: object) -> None:
            self.stdout.write(f"signal {signum}: stopping after this cycle")
            stop.set()
            services.wakeup.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        self.stdout.write(f"scheduler {worker.name} running")
        worker.run(stop, services.wakeup)
        self.stdout.write("scheduler stopped")
