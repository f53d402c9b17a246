"""SIGUSR1 from Slurm (``sbatch --signal=USR1@SECONDS``): remember it; a callback saves and stops.

Kept free of heavy imports so the entry points install the handler before importing torch: Python's
default action for SIGUSR1 is to end the process, which would lose the run if the signal came early.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received = threading.Event()
_installed: set[int] = set()


def _handler(signum: int, frame: FrameType | None) -> None:
    _received.set()


def install(signum: int = signal.SIGUSR1) -> None:
    """Route ``signum`` to a flag (idempotent; only from the main thread, as Python requires)."""
    if signum in _installed or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signum, _handler)
    _installed.add(signum)


def received() -> bool:
    return _received.is_set()


def reset() -> None:
    """Forget a received signal (a new run in the same process, as in tests)."""
    _received.clear()
