"""A real scheduler worker process for the fault tests: `python -m tests.scheduler.process_worker NAME
[--freeze-before-sbatch]` with DATABASE_URL pointing at the test database.

It runs the production loop (`Worker.run`: heartbeat, PostgreSQL listener, cycles) until SIGTERM. With
`--freeze-before-sbatch` it stops itself (SIGSTOP) the first time it is about to send an sbatch, after it
committed the attempt and checked its claim: the moment a frozen worker is most dangerous. The test
sends SIGCONT when it wants it to go on.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    import logging

    from scheduler import services, ssh
    from scheduler.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    name = sys.argv[1]
    if "--freeze-before-sbatch" in sys.argv:
        real = ssh.Connection.run_shell
        frozen = threading.Event()

        def run_shell(self: ssh.Connection, command: str, stdin: bytes | None = None, **kw: Any) -> Any:
            if "sbatch" in command and not frozen.is_set():
                frozen.set()
                print("FROZEN before sbatch", flush=True)
                os.kill(os.getpid(), signal.SIGSTOP)
            return real(self, command, stdin=stdin, **kw)

        ssh.Connection.run_shell = run_shell  # type: ignore[method-assign]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: (stop.set(), services.wakeup.set()))
    print(f"worker {name} running", flush=True)
    Worker(name=name).run(stop, services.wakeup)


if __name__ == "__main__":
    main()
