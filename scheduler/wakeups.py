"""Waking a worker in another process: PostgreSQL's LISTEN/NOTIFY.

A web, API or Slack request that submits or cancels a job calls `notify_workers()` after its commit; every
`run_scheduler` process listens (`listen`, a thread beside its loop) and starts its next cycle at once
instead of after its idle interval. The embedded deployment (SQLite, the loop in the server process)
needs none of this: the in-process event (`scheduler.services.wakeup`) wakes its loop. These are
database notifications between processes; inside one process nothing listens.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.db import connection

log = logging.getLogger(__name__)

CHANNEL = "tanuki_scheduler"


def notify_workers() -> None:
    """Tell every listening worker that there is work (PostgreSQL only; a no-op elsewhere)."""
    if connection.vendor != "postgresql":
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
    except Exception:  # the worker still polls: a lost wake-up costs seconds, not a job
        log.warning("could not notify the scheduler workers", exc_info=True)


def listen(stop: threading.Event, wakeup: threading.Event) -> None:
    """Set `wakeup` whenever a notification arrives, until `stop`; reconnects after errors."""
    if connection.vendor != "postgresql":
        return
    import psycopg

    params: dict[str, Any] = dict(connection.get_connection_params())
    params.pop("cursor_factory", None)
    params.pop("context", None)
    while not stop.is_set():
        try:
            with psycopg.connect(**params, autocommit=True) as listener:
                listener.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    for _notice in listener.notifies(timeout=1.0, stop_after=1):
                        wakeup.set()
        except Exception:
            log.warning("scheduler listener lost its connection; reconnecting", exc_info=True)
            stop.wait(2.0)
