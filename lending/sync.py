"""Slurm reservations for approved bookings, kept in step by the scheduler's worker (a cluster hook).

Facts about Slurm 22.05 this relies on:
- `TRES=gres/gpu:N` reservations are refused, so a booking reserves whole nodes: `NodeCnt=` for a
  number of GPUs (ceil(gpus / GPUs per node)), `Nodes=` for named nodes.
- StartTime/EndTime are read as the cluster's local time (`Cluster.tz`); a start in the past is
  refused, so a booking that has begun is created from now on.
- Slurm removes a reservation itself when it ends; the portal only marks the booking finished.

The scontrol command lines and the parser of their output are `scheduler.slurm`'s; this module
decides what each booking needs of Slurm and records what came of it.

Nothing remote runs when nothing needs syncing (the worker's idle cycle stays at its own commands).
A failed command is recorded on the booking and retried after RETRY_AFTER.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from django.db.models import Q
from django.utils import timezone

from lending import services
from lending.models import Reservation
from scheduler import slurm, ssh
from scheduler.models import Cluster
from scheduler.steps import Poll

log = logging.getLogger(__name__)

RETRY_AFTER = dt.timedelta(minutes=2)


def reservation_spec(r: Reservation, now: dt.datetime | None = None) -> slurm.ReservationSpec:
    """What the booking asks of Slurm: its window (from a few seconds ahead at the earliest), whole
    nodes, and the subteam's Slurm account (else its members' own cluster users), so Slurm itself
    refuses another subteam's job in it, whatever that job's command says."""
    now = now or timezone.now()
    accounts = tuple(services.accounts_for(r.subteam_id, r.cluster))
    return slurm.ReservationSpec(
        name=r.slurm_name,
        start=max(r.start, now + dt.timedelta(seconds=5)),
        end=r.end,
        tz=r.cluster.tz,
        partition=r.cluster.default_partition,
        nodes=tuple(r.nodes),
        node_count=r.node_count,
        accounts=accounts,
        users=() if accounts else tuple(services.users_for(r.subteam_id, r.cluster)),
    )


def create_command(r: Reservation, now: dt.datetime | None = None) -> str:
    """Create, then show it (one round trip) to learn which nodes Slurm picked."""
    return ssh.chain_commands(*slurm.create_reservation_commands(reservation_spec(r, now)))


def update_command(r: Reservation, now: dt.datetime | None = None) -> str:
    spec = reservation_spec(r, now)
    if r.start <= (now or timezone.now()):
        spec = dataclasses.replace(spec, start=None)  # it has begun: keep its start
    return ssh.chain_commands(*slurm.update_reservation_commands(spec))


def pending(cluster: Cluster, now: dt.datetime) -> list[Reservation]:
    return list(
        Reservation.objects.filter(cluster=cluster)
        .exclude(sync_state=Reservation.Sync.SYNCED)
        .filter(Q(sync_attempted_at__isnull=True) | Q(sync_attempted_at__lt=now - RETRY_AFTER))
        .select_related("cluster", "subteam")
    )


def sync_reservations(poll: Poll) -> None:
    """1. Time passes: active / finished / idle (database only).
    2. Each booking whose Slurm copy is out of step: create, update or delete it; record the result."""
    cluster, conn = poll.cluster, poll.conn
    now = timezone.now()
    services.advance(cluster, now)
    for r in pending(cluster, now):
        _sync_one(r, conn, now)


def _sync_one(r: Reservation, conn: ssh.Connection, now: dt.datetime) -> None:
    Reservation.objects.filter(pk=r.pk).update(sync_attempted_at=now)
    want_gone = r.state not in Reservation.BOOKED_STATES or r.end <= now
    if want_gone and not r.on_cluster:  # never made it to the cluster: nothing to delete
        _done(r, on_cluster=False, synced_from=r.sync_state, ran=False)
        return
    try:
        if r.sync_state == Reservation.Sync.DELETE or want_gone:
            result = conn.run(slurm.delete_reservation_command(r.slurm_name))
            if not result.ok and not slurm.reservation_missing(result.stderr + result.stdout):
                result.check()  # gone already (it ended, or someone deleted it) counts as deleted
            _done(r, on_cluster=False, synced_from=r.sync_state)
        elif r.sync_state == Reservation.Sync.CREATE:
            result = conn.run_shell(create_command(r, now)).check()
            nodes = slurm.reserved_nodes(result.stdout, r.slurm_name)
            _done(r, on_cluster=True, synced_from=r.sync_state, nodes=nodes)
        elif r.sync_state == Reservation.Sync.UPDATE:
            result = conn.run_shell(update_command(r, now)).check()
            nodes = slurm.reserved_nodes(result.stdout, r.slurm_name)
            _done(r, on_cluster=True, synced_from=r.sync_state, nodes=nodes)
    except ssh.ClusterUnreachable:
        raise
    except ssh.SlurmError as error:
        log.warning("reservation %s on %s: %s", r.slurm_name, r.cluster, error)
        Reservation.objects.filter(pk=r.pk).update(sync_error=str(error)[:2000])


def _done(
    r: Reservation, *, on_cluster: bool, synced_from: str, nodes: str | None = None, ran: bool = True
) -> None:
    """Synced, unless the booking changed while the command ran (then the next cycle acts on it)."""
    fields: dict[str, object] = {"on_cluster": on_cluster, "sync_error": ""}
    if nodes is not None:
        fields["slurm_nodes"] = nodes[:500]
    Reservation.objects.filter(pk=r.pk).update(**fields)
    Reservation.objects.filter(pk=r.pk, sync_state=synced_from).update(sync_state=Reservation.Sync.SYNCED)
    if on_cluster:  # cancelled while being created: delete what was just made
        Reservation.objects.filter(pk=r.pk).exclude(state__in=Reservation.BOOKED_STATES).update(
            sync_state=Reservation.Sync.DELETE, sync_attempted_at=None
        )
    if ran:
        services.record_sync(r, "delete" if not on_cluster else synced_from, nodes)
