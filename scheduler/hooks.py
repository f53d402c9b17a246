"""Extension points for the apps built on the scheduler (lending list, metrics, evals, Slack).

Apps register in their AppConfig.ready(). A hook that raises is logged and skipped: it never stops a
poll cycle or a job's state change. Hooks run inside the worker's cycle, so they must be cheap when
there is nothing to do (no remote command; SFTP reads only for jobs that need them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.dispatch import Signal

if TYPE_CHECKING:
    from scheduler.models import Cluster, Job
    from scheduler.ssh import Connection

log = logging.getLogger("scheduler.hooks")

# Called once per poll of a reachable cluster, after submission, tracking, cancels and logs.
ClusterHook = Callable[["Cluster", "Connection"], None]
cluster_hooks: list[ClusterHook] = []

# Called once per worker cycle, whatever the clusters (e.g. delivering queued notifications).
loop_hooks: list[Callable[[], None]] = []

# Extra `#SBATCH` options for a job, asked when its script is rendered (e.g. ["--reservation=sft-42"]).
# Each option must be a validated word: it goes into the script as written.
SbatchOptionHook = Callable[["Job"], list[str]]
sbatch_option_hooks: list[SbatchOptionHook] = []

# Sent after the commit that changed a job's state: sender=Job, job=<Job>, old=<state>, new=<state>.
job_state_changed = Signal()

# Sent after the commit that stored new log bytes: sender=Job, job=<Job>, stream="stdout"|"stderr", text=<str>.
job_log_appended = Signal()


def run_cluster_hooks(cluster: Cluster, conn: Connection) -> None:
    for hook in list(cluster_hooks):
        try:
            hook(cluster, conn)
        except Exception:
            log.exception("cluster hook %s failed for %s", getattr(hook, "__name__", hook), cluster)


def run_loop_hooks() -> None:
    for hook in list(loop_hooks):
        try:
            hook()
        except Exception:
            log.exception("loop hook %s failed", getattr(hook, "__name__", hook))


def sbatch_options(job: Job) -> list[str]:
    options: list[str] = []
    for hook in list(sbatch_option_hooks):
        try:
            options += hook(job)
        except Exception:
            log.exception("sbatch option hook %s failed for %s", getattr(hook, "__name__", hook), job)
    return options


def log_appended(job: Job, stream: str, text: str) -> None:
    """Announce new log text once the surrounding transaction commits."""
    from django.db import transaction

    def send() -> None:
        for receiver, response in job_log_appended.send_robust(
            sender=type(job), job=job, stream=stream, text=text
        ):
            if isinstance(response, Exception):
                log.error("job_log_appended receiver %s failed: %r", receiver, response)

    transaction.on_commit(send)


def state_changed(job: Job, old: str, new: str) -> None:
    """Announce a state change once the surrounding transaction commits (never inside it)."""
    from django.db import transaction

    def send() -> None:
        for receiver, response in job_state_changed.send_robust(sender=type(job), job=job, old=old, new=new):
            if isinstance(response, Exception):
                log.error("job_state_changed receiver %s failed: %r", receiver, response)

    transaction.on_commit(send)
