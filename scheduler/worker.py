"""The scheduler's worker: one loop, one cycle, the steps in the order `SCHEDULER_STEPS` lists them.

A cycle visits every active cluster this worker can claim, connects once (pooled SSH) and runs the
per-cluster steps on that connection (`steps.Poll`); then it runs the per-cycle steps once. The steps
and their order are a setting (config/settings.py), loaded once when the worker starts, so the whole
cycle reads in one place. A step that raises is logged and the cycle goes on: one feature's failure
never stops jobs from being tracked. An SSH/Slurm failure ends that cluster's visit for this cycle.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from scheduler import identity, ssh, wakeups
from scheduler.models import Cluster, Job
from scheduler.steps import CLAIM_LEASE, HEARTBEAT, CycleStats, Poll

log = logging.getLogger(__name__)

FAST_INTERVAL = 2.0
SLOW_INTERVAL = 30.0

ClusterStep = Callable[[Poll], None]
CycleStep = Callable[[], object]


def load_steps() -> tuple[list[tuple[str, ClusterStep]], list[tuple[str, CycleStep]]]:
    """(per-cluster steps, per-cycle steps) from the settings, as (dotted path, function)."""
    cluster_steps = [(path, import_string(path)) for path in settings.SCHEDULER_STEPS]
    cycle_steps = [(path, import_string(path)) for path in settings.SCHEDULER_CYCLE_STEPS]
    return cluster_steps, cycle_steps


class Worker:
    def __init__(self, name: str | None = None, pool: ssh.Pool | None = None) -> None:
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.pool = pool or ssh.pool
        self.pool.max_idle = float(settings.SSH_IDLE_SECONDS)
        self.last_stats: dict[int, CycleStats] = {}
        self.cluster_steps, self.cycle_steps = load_steps()

    def run(self, stop: threading.Event, wakeup: threading.Event | None = None) -> None:
        """Cycle until `stop`. Beside the loop: a heartbeat that renews this worker's claims (so they
        last while it lives, and pass on within `CLAIM_LEASE` when it dies or freezes), and, on
        PostgreSQL, a listener that wakes the loop when a job is submitted or cancelled in another
        process (`wakeups.notify_workers`)."""
        wakeup = wakeup or threading.Event()
        helpers = [
            threading.Thread(target=self.heartbeat, args=(stop,), name="scheduler-heartbeat", daemon=True),
            threading.Thread(
                target=wakeups.listen, args=(stop, wakeup), name="scheduler-listen", daemon=True
            ),
        ]
        for thread in helpers:
            thread.start()
        interval = FAST_INTERVAL
        try:
            while not stop.is_set():
                try:
                    busy = self.cycle()
                except Exception:  # never let one bad cycle end the loop
                    log.exception("scheduler cycle failed")
                    busy = False
                interval = FAST_INTERVAL if busy else min(SLOW_INTERVAL, interval * 1.5)
                if wakeup.wait(interval):
                    wakeup.clear()
                    interval = FAST_INTERVAL
        finally:
            stop.set()
            wakeup.set()
            self.release_claims()

    def heartbeat(self, stop: threading.Event) -> None:
        """Renew this worker's claims every `HEARTBEAT` while it runs (its own DB connection)."""
        from django.db import connection

        try:
            while not stop.wait(HEARTBEAT.total_seconds()):
                try:
                    self.renew_claims()
                except Exception:
                    log.exception("renewing the claims of %s failed", self.name)
        finally:
            connection.close()

    def renew_claims(self) -> None:
        until = timezone.now() + CLAIM_LEASE
        Cluster.objects.filter(poll_claimed_by=self.name).update(poll_claimed_until=until)
        Job.objects.filter(claimed_by=self.name).update(claimed_until=until)

    def cycle(self) -> bool:
        """One pass over every active cluster, then the per-cycle steps. True when there is work in
        flight (poll again soon)."""
        busy = False
        for cluster in Cluster.objects.filter(is_active=True):
            if not self._claim_cluster(cluster):
                # Another worker polls it. Ask again soon: when that worker dies, its claim runs out
                # within CLAIM_LEASE and this one takes over at once.
                busy = True
                continue
            stats = self.poll_cluster(cluster)
            self.last_stats[cluster.pk] = stats
            busy = busy or stats.did_something or stats.tracked > 0
        for path, step in self.cycle_steps:
            try:
                step()
            except Exception:
                log.exception("scheduler step %s failed", path)
        self.pool.close_idle()  # members' connections unused for a while (and any cluster's)
        return busy

    def poll_cluster(self, cluster: Cluster) -> CycleStats:
        stats = CycleStats(cluster=cluster.name)
        try:
            conn = identity.connect_service(cluster, self.pool)
        except ssh.HostKeyMismatch as error:
            self._mark(cluster, Cluster.Status.HOST_KEY_MISMATCH, str(error))
            stats.errors.append(str(error))
            return stats
        except (ssh.SlurmError, FileNotFoundError) as error:
            self._mark(cluster, Cluster.Status.UNREACHABLE, str(error))
            stats.errors.append(str(error))
            return stats
        commands_before, sftp_before = conn.commands_run, conn.sftp_ops
        poll = Poll(cluster=cluster, conn=conn, worker=self.name, stats=stats, pool=self.pool)
        try:
            for path, step in self.cluster_steps:
                try:
                    step(poll)
                except ssh.SlurmError:
                    raise
                except Exception:
                    log.exception("scheduler step %s failed for %s", path, cluster)
                    stats.errors.append(f"{path} failed")
            self._mark(cluster, Cluster.Status.REACHABLE, "")
        except ssh.SlurmError as error:
            log.warning("cluster %s: %s", cluster.name, error)
            stats.errors.append(str(error))
            status = (
                Cluster.Status.UNREACHABLE
                if isinstance(error, ssh.ClusterUnreachable)
                else Cluster.Status.REACHABLE
            )
            self._mark(cluster, status, str(error))
        finally:
            member_commands, member_sftp = poll.remote_work()
            stats.commands = conn.commands_run - commands_before + member_commands
            stats.sftp_ops = conn.sftp_ops - sftp_before + member_sftp
        return stats

    def _claim_cluster(self, cluster: Cluster) -> bool:
        now = timezone.now()
        return bool(
            Cluster.objects.filter(pk=cluster.pk)
            .filter(
                Q(poll_claimed_until__isnull=True)
                | Q(poll_claimed_until__lt=now)
                | Q(poll_claimed_by=self.name)
            )
            .update(poll_claimed_by=self.name, poll_claimed_until=now + CLAIM_LEASE)
        )

    def release_claims(self) -> None:
        Cluster.objects.filter(poll_claimed_by=self.name).update(poll_claimed_by="", poll_claimed_until=None)
        Job.objects.filter(claimed_by=self.name).update(claimed_by="", claimed_until=None)

    def _mark(self, cluster: Cluster, status: str, error: str) -> None:
        fields: dict[str, object] = {"status": status, "last_error": error[:2000]}
        if status == Cluster.Status.REACHABLE:
            fields["last_contact_at"] = timezone.now()
        Cluster.objects.filter(pk=cluster.pk).update(**fields)
        for name, value in fields.items():
            setattr(cluster, name, value)
