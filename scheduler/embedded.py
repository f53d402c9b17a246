"""The scheduler loop inside the server process, for the embedded deployment (`make demo`).

Production runs `manage.py run_scheduler` as its own process instead; both use the same Worker.
"""

from __future__ import annotations

import atexit
import logging
import threading

from scheduler import services
from scheduler.worker import Worker

log = logging.getLogger(__name__)
_started: threading.Thread | None = None
_stop = threading.Event()


def start() -> threading.Thread:
    """Start the loop in a daemon thread once per process; later calls return the same thread."""
    global _started
    if _started is not None and _started.is_alive():
        return _started
    worker = Worker()
    thread = threading.Thread(target=worker.run, args=(_stop, services.wakeup), name="scheduler", daemon=True)
    thread.start()
    atexit.register(stop)
    log.info("embedded scheduler %s started", worker.name)
    _started = thread
    return thread


def stop(timeout: float = 10.0) -> None:
    _stop.set()
    services.wakeup.set()
    if _started is not None:
        _started.join(timeout)
