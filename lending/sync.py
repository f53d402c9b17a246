"""Slurm reservations for approved bookings, kept in step by the scheduler's worker (a cluster hook).

Facts about Slurm 22.05 this relies on (checked on the dev cluster):
- `TRES=gres/gpu:N` reservations are refused, so a booking reserves whole nodes: `NodeCnt=` for a
  number of GPUs (ceil(gpus / GPUs per node)), `Nodes=` for named nodes.
- StartTime/EndTime are read as the cluster's local time (`Cluster.tz`); a start in the past is
  refused, so a booking that has begun is created from now on.
- `scontrol update` keeps the nodes a reservation holds: moving it onto a time when another
  reservation holds them is refused ("Requested reservation overlaps with another reservation") even
  when other nodes are free. A delete and a create lets Slurm pick free nodes again.
- A `NodeCnt=2` create with one node free succeeds with one node: what Slurm reserved is read back
  and compared with what the booking asks.
- A reservation with jobs in it (running or pending) cannot be deleted ("… is in use"), and a job
  still running when its reservation ends is stopped (TIMEOUT: `ResvOverRun` is 0 by default), so
  shortening a reservation would end the jobs in it.
- Slurm removes a reservation itself when it ends; the portal only marks the booking finished.

A move Slurm refuses to make in place is made under a new reservation name (`_replace`): the old one
is deleted first when it can be, so that its nodes are free for the new one; when jobs are in it, the
new reservation is made beside it, the booking records the new name (jobs submitted from then on go
into it), and the old one is kept as it is (`KeptReservation`) until its jobs end: the subteam never
loses a running job, and the old nodes are held only while a job runs or waits there. The worker tries
to delete it every `KEPT_RETRY` (one command) and stops at its end, when Slurm removes it anyway.

The scontrol command lines and the parsers of their output are `scheduler.slurm`'s; this module
decides what each booking needs of Slurm and records what came of it.

Nothing remote runs when nothing needs syncing (the worker's idle cycle stays at its own commands).
A failed attempt is recorded on the booking (Slurm's reason, the count of failures in a row) and
retried after `retry_delay` (2, 4, 8 … 60 minutes); a booking Slurm does not enforce is flagged, and
told to its subteam's channel, once, and again when it is enforced (`services.mark_not_enforced`,
`services.mark_enforced`). A booking's retries end with the booking.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lending import services
from lending.models import KeptReservation, Reservation
from scheduler import slurm, ssh
from scheduler.models import Cluster
from scheduler.steps import Poll

log = logging.getLogger(__name__)

RETRY_FIRST = dt.timedelta(minutes=2)
RETRY_MAX = dt.timedelta(minutes=60)
TIME_SLACK = dt.timedelta(seconds=60)  # Slurm's times are whole seconds; a create from now moves a little
# How often a kept reservation's delete is tried while jobs are in it: its nodes stay held at most
# this long after its last job ends.
KEPT_RETRY = dt.timedelta(minutes=2)


def retry_delay(attempts: int) -> dt.timedelta:
    """The pause after the `attempts`-th failed attempt in a row: 2, 4, 8, 16, 32, then 60 minutes."""
    return min(RETRY_MAX, RETRY_FIRST * (1 << min(max(attempts - 1, 0), 10)))


def reservation_spec(
    r: Reservation, now: dt.datetime | None = None, *, name: str = ""
) -> slurm.ReservationSpec:
    """What the booking asks of Slurm: its window (from a few seconds ahead at the earliest), whole
    nodes, and the subteam's Slurm account (else its members' own cluster users), so Slurm itself
    refuses another subteam's job in it, whatever that job's command says. Under the booking's Slurm
    name, or `name` (a move under a new name)."""
    now = now or timezone.now()
    accounts = tuple(services.accounts_for(r.subteam_id, r.cluster))
    return slurm.ReservationSpec(
        name=name or r.slurm_name,
        start=max(r.start, now + dt.timedelta(seconds=5)),
        end=r.end,
        tz=r.cluster.tz,
        partition=r.cluster.default_partition,
        nodes=tuple(r.nodes),
        node_count=r.node_count,
        accounts=accounts,
        users=() if accounts else tuple(services.users_for(r.subteam_id, r.cluster)),
    )


def update_spec(r: Reservation, now: dt.datetime | None = None) -> slurm.ReservationSpec:
    spec = reservation_spec(r, now)
    if r.start <= (now or timezone.now()):
        spec = dataclasses.replace(spec, start=None)  # it has begun: keep its start
    return spec


def create_command(r: Reservation, now: dt.datetime | None = None) -> str:
    """Create, then show it (one round trip) to learn which nodes Slurm picked."""
    return ssh.chain_commands(*slurm.create_reservation_commands(reservation_spec(r, now)))


def update_command(r: Reservation, now: dt.datetime | None = None) -> str:
    return ssh.chain_commands(*slurm.update_reservation_commands(update_spec(r, now)))


def replace_command(r: Reservation, new_name: str, now: dt.datetime | None = None) -> str:
    """Delete the old ; create under `new_name` ; show the new ; show the old, in one round trip: each
    runs whatever the one before did, and the shows say what came of it
    (`slurm.replace_reservation_commands`)."""
    argvs = slurm.replace_reservation_commands(r.slurm_name, reservation_spec(r, now, name=new_name))
    return " ; ".join(ssh.quote_command(argv) for argv in argvs)


def shortfall(shown: slurm.ReservationInfo, spec: slurm.ReservationSpec) -> str:
    """'' when Slurm's reservation is what the spec asks (its end, its start unless left alone, its
    nodes); else how it differs, in words."""
    problems = []
    if shown.end is None or abs(shown.end - spec.end) > TIME_SLACK:
        problems.append(_("Slurm's reservation ends at another time"))
    if spec.start is not None and (shown.start is None or abs(shown.start - spec.start) > TIME_SLACK):
        problems.append(_("Slurm's reservation starts at another time"))
    if spec.nodes:
        try:
            held = set(shown.node_names)
        except ValueError:
            held = set()
        if held != set(spec.nodes):
            problems.append(
                _("Slurm holds %(held)s, not %(wanted)s")
                % {"held": shown.nodes or "-", "wanted": ",".join(spec.nodes)}
            )
    elif shown.node_count < spec.node_count:
        problems.append(
            _("Slurm reserved %(held)d of the %(wanted)d nodes")
            % {"held": shown.node_count, "wanted": spec.node_count}
        )
    return "; ".join(problems)


def _refusals(result: ssh.CommandResult) -> list[slurm.ReservationRefusal]:
    return slurm.parse_reservation_refusals(result.stdout + "\n" + result.stderr)


def refusal(result: ssh.CommandResult) -> str:
    """Slurm's reasons in one line: `update: Requested reservation overlaps with another reservation`.
    A show's "not found" is left out when another refusal says why (it adds nothing to it)."""
    found = _refusals(result)
    said = [r for r in found if not (r.command == "show" and r.kind == "missing")] or found
    return "; ".join(str(r) for r in said) or f"exit status {result.exit_status}"


def _shown(result: ssh.CommandResult, name: str) -> slurm.ReservationInfo | None:
    return next((r for r in slurm.parse_reservations(result.stdout) if r.name == name), None)


@dataclass(frozen=True)
class Kept:
    """A reservation left on the cluster by a move because jobs were in it (`KeptReservation`)."""

    name: str
    nodes: str
    ends_at: dt.datetime


@dataclass(frozen=True)
class Outcome:
    """What one attempt left on the cluster. `on_cluster` None: unknown (Slurm could not be asked);
    `nodes` None: unknown (keep what is recorded); `name`: the booking's reservation now has this
    Slurm name; `kept`: its old reservation stays until its jobs end."""

    action: str  # create, update, recreate, delete
    ok: bool
    on_cluster: bool | None
    nodes: str | None = None
    reason: str = ""
    note: str = ""  # a success after a refused update: why it was recreated
    name: str | None = None
    kept: Kept | None = None


def pending(cluster: Cluster, now: dt.datetime) -> list[Reservation]:
    return list(
        Reservation.objects.filter(cluster=cluster)
        .exclude(sync_state=Reservation.Sync.SYNCED)
        .filter(Q(sync_retry_at__isnull=True) | Q(sync_retry_at__lte=now))
        .select_related("cluster", "subteam")
    )


def kept_due(cluster: Cluster, now: dt.datetime) -> list[KeptReservation]:
    return list(
        KeptReservation.objects.filter(reservation__cluster=cluster, retry_at__lte=now).select_related(
            "reservation"
        )
    )


def sync_reservations(poll: Poll) -> None:
    """1. Time passes: active / finished / idle (database only).
    2. Kept reservations whose jobs may have ended: deleted (first, so their nodes are free for 3).
    3. Each booking whose Slurm copy is out of step and whose retry time has come: create, update
       (refused: delete and create anew under a new name) or delete it; record the result."""
    cluster, conn = poll.cluster, poll.conn
    now = timezone.now()
    services.advance(cluster, now)
    for kept in kept_due(cluster, now):
        _delete_kept(kept, conn, now)
    for r in pending(cluster, now):
        _sync_one(r, conn, now)


def _delete_kept(kept: KeptReservation, conn: ssh.Connection, now: dt.datetime) -> None:
    """Delete a kept reservation; while jobs are still in it, try again after `KEPT_RETRY` (other
    refusals back off like a booking's). Past its end Slurm has removed it: no command."""
    if kept.ends_at <= now:
        kept.delete()
        return
    KeptReservation.objects.filter(pk=kept.pk).update(retry_at=now + RETRY_FIRST)  # a dying worker waits
    try:
        result = conn.run(slurm.delete_reservation_command(kept.name))
    except ssh.ClusterUnreachable:
        raise
    except ssh.SlurmError as error:
        in_use, why = False, str(error)
    else:
        output = result.stdout + "\n" + result.stderr
        if result.ok or slurm.reservation_missing(output, kept.name):
            with transaction.atomic():
                kept.delete()
                services.record_sync(kept.reservation, "delete_kept", kept.nodes, note=kept.name)
            return
        in_use, why = any(x.kind == "in_use" for x in _refusals(result)), refusal(result)
    attempts = kept.attempts + 1
    pause = KEPT_RETRY if in_use else retry_delay(attempts)
    KeptReservation.objects.filter(pk=kept.pk).update(
        attempts=attempts, last_error=why[:2000], retry_at=min(now + pause, kept.ends_at)
    )


def _sync_one(r: Reservation, conn: ssh.Connection, now: dt.datetime) -> None:
    # Until this attempt records what came of it, the next one waits the first pause (a worker that
    # dies in the middle is retried, not looped on).
    Reservation.objects.filter(pk=r.pk).update(sync_attempted_at=now, sync_retry_at=now + RETRY_FIRST)
    want_gone = r.state not in Reservation.BOOKED_STATES or r.end <= now
    if want_gone and not r.on_cluster:  # never made it to the cluster: nothing to delete
        _succeeded(r, Outcome("delete", ok=True, on_cluster=False), ran=False)
        return
    action = "delete" if r.sync_state == Reservation.Sync.DELETE or want_gone else r.sync_state
    try:
        if action == "delete":
            outcome = _delete(r, conn)
        elif action == Reservation.Sync.CREATE:
            outcome = _create(r, conn, now)
        else:
            outcome = _update(r, conn, now)
    except ssh.ClusterUnreachable:
        raise
    except ssh.SlurmError as error:  # no answer from the command (it timed out): nothing is known
        outcome = Outcome(action, ok=False, on_cluster=None, reason=str(error))
    if outcome.ok:
        _succeeded(r, outcome)
    else:
        log.warning("reservation %s on %s: %s", r.slurm_name, r.cluster, outcome.reason)
        _failed(r, outcome, now)


def _delete(r: Reservation, conn: ssh.Connection) -> Outcome:
    result = conn.run(slurm.delete_reservation_command(r.slurm_name))
    if result.ok or slurm.reservation_missing(result.stdout + "\n" + result.stderr, r.slurm_name):
        return Outcome("delete", ok=True, on_cluster=False)  # gone already (it ended, or was deleted)
    return Outcome("delete", ok=False, on_cluster=True, reason=refusal(result))


def _create(r: Reservation, conn: ssh.Connection, now: dt.datetime) -> Outcome:
    spec = reservation_spec(r, now)
    result = conn.run_shell(create_command(r, now))
    shown = _shown(result, r.slurm_name)
    if shown is not None:
        short = shortfall(shown, spec)
        return Outcome("create", ok=not short, on_cluster=True, nodes=shown.nodes, reason=short)
    created = result.ok or "Reservation created" in result.stdout
    return Outcome("create", ok=False, on_cluster=created, reason=refusal(result))


def _update(r: Reservation, conn: ssh.Connection, now: dt.datetime) -> Outcome:
    """1. `scontrol update` (it keeps the reservation's nodes, and jobs already in it) and show.
    2. Refused, or not what the booking asks: made anew under a new name in a second round trip
       (`_replace`). Not when the controller could not be reached."""
    result = conn.run_shell(update_command(r, now))
    shown = _shown(result, r.slurm_name)
    if result.ok and shown is not None:
        short = shortfall(shown, update_spec(r, now))
        if not short:
            return Outcome("update", ok=True, on_cluster=True, nodes=shown.nodes)
        first = short
    else:
        first = refusal(result)
    if any(x.kind == "unreachable" for x in _refusals(result)):
        return Outcome("update", ok=False, on_cluster=None, reason=first)
    return _replace(r, conn, now, first)


def _replace(r: Reservation, conn: ssh.Connection, now: dt.datetime, first: str) -> Outcome:
    """delete old ; create new (a new name) ; show new ; show old, in one round trip.
    1. The new one is there: the booking takes its name (and nodes). If the old one is still there
       (its delete was refused because jobs are in it), it is kept as it is until they end: not
       shortened, which would stop them (see the module docstring).
    2. The new one is not there: the booking keeps its old name; with the old reservation deleted it
       needs a create next time, else (jobs in it) an update.
    A new one short of the booking (fewer nodes) is held, and the booking is not enforced."""
    new_name = r.new_slurm_name()
    again = conn.run_shell(replace_command(r, new_name, now))
    output = again.stdout + "\n" + again.stderr
    old = _shown(again, r.slurm_name)
    old_gone = old is None and slurm.reservation_missing(output, r.slurm_name)
    shown = _shown(again, new_name)
    if shown is not None:
        kept = None
        if not old_gone:  # in use; or not known, and the kept reservation's delete will tell
            fallback = now + dt.timedelta(days=services.max_days())
            kept = Kept(
                name=r.slurm_name,
                nodes=old.nodes if old is not None else r.slurm_nodes,
                ends_at=old.end if old is not None and old.end is not None else fallback,
            )
        short = shortfall(shown, reservation_spec(r, now, name=new_name))
        return Outcome(
            "recreate",
            ok=not short,
            on_cluster=True,
            nodes=shown.nodes,
            reason=f"{first}; {short}" if short else "",
            note=first,
            name=new_name,
            kept=kept,
        )
    reason = f"{first}; {refusal(again)}"
    if old is not None:  # jobs in it: it stays the booking's reservation, and the move is retried
        return Outcome("recreate", ok=False, on_cluster=True, nodes=old.nodes, reason=reason)
    return Outcome(
        "recreate",
        ok=False,
        on_cluster=False if old_gone else None,
        nodes="" if old_gone else None,
        reason=reason,
    )


def _keep(r: Reservation, outcome: Outcome) -> None:
    """The booking's new Slurm name, and its old reservation kept while jobs are in it (inside the
    caller's transaction)."""
    if outcome.name is None:
        return
    Reservation.objects.filter(pk=r.pk).update(slurm_name=outcome.name)
    r.slurm_name = outcome.name
    if outcome.kept is not None:
        k = outcome.kept
        now = timezone.now()
        KeptReservation.objects.create(
            reservation=r,
            name=k.name,
            nodes=k.nodes[:500],
            ends_at=k.ends_at,
            kept_since=now,
            retry_at=min(now + KEPT_RETRY, k.ends_at),  # its delete was just refused
        )


def _succeeded(r: Reservation, outcome: Outcome, *, ran: bool = True) -> None:
    """Synced, unless the booking changed while the command ran (then the next cycle acts on it);
    enforced again (and said so) when it was not. One transaction."""
    fields: dict[str, object] = {
        "on_cluster": outcome.on_cluster,
        "sync_error": "",
        "sync_attempts": 0,
        "sync_retry_at": None,
    }
    if outcome.nodes is not None:
        fields["slurm_nodes"] = outcome.nodes[:500]
    with transaction.atomic():
        Reservation.objects.filter(pk=r.pk).update(**fields)
        _keep(r, outcome)
        synced = Reservation.objects.filter(
            pk=r.pk, sync_state=r.sync_state, start=r.start, end=r.end
        ).update(sync_state=Reservation.Sync.SYNCED)
        if outcome.on_cluster:  # cancelled while being created: delete what was just made
            Reservation.objects.filter(pk=r.pk).exclude(state__in=Reservation.BOOKED_STATES).update(
                sync_state=Reservation.Sync.DELETE, sync_attempted_at=None
            )
        if ran:
            services.record_sync(r, outcome.action, outcome.nodes, note=outcome.note, **_names(outcome))
        if synced or not outcome.on_cluster:
            services.mark_enforced(r, outcome.nodes, announce=bool(outcome.on_cluster) and r.is_booked)


def _failed(r: Reservation, outcome: Outcome, now: dt.datetime) -> None:
    """Slurm's reason, one more failure in a row, the next try after the pause; what is on the cluster
    when that is known (a reservation deleted but not made anew needs a create next time). A booking
    that Slurm does not enforce is flagged (with its event) the first time. One transaction."""
    attempts = r.sync_attempts + 1
    retry_at = now + retry_delay(attempts)
    reason = outcome.reason[:2000]
    fields: dict[str, object] = {"sync_error": reason, "sync_attempts": attempts, "sync_retry_at": retry_at}
    if outcome.on_cluster is not None:
        fields["on_cluster"] = outcome.on_cluster
    if outcome.nodes is not None:
        fields["slurm_nodes"] = outcome.nodes[:500]
    with transaction.atomic():
        Reservation.objects.filter(pk=r.pk).update(**fields)
        if outcome.name is not None:  # made anew, short of the booking: what Slurm holds is recorded
            _keep(r, outcome)
            services.record_sync(r, outcome.action, outcome.nodes, note=reason, **_names(outcome))
        if outcome.on_cluster is not None and outcome.action != "delete":
            Reservation.objects.filter(
                pk=r.pk, sync_state__in=(Reservation.Sync.CREATE, Reservation.Sync.UPDATE)
            ).update(sync_state=Reservation.Sync.UPDATE if outcome.on_cluster else Reservation.Sync.CREATE)
        if outcome.action != "delete" and r.is_booked:
            services.mark_not_enforced(r, reason, attempts=attempts, retry_at=retry_at, now=now)


def _names(outcome: Outcome) -> dict[str, str]:
    """For the history: the new Slurm name, and the old one kept while jobs are in it."""
    names = {"name": outcome.name} if outcome.name else {}
    if outcome.kept is not None:
        names["kept"] = outcome.kept.name
    return names
