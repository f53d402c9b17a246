"""Every change to the lending list goes through these functions (web pages, API and Slack alike).
Who may is decided before the call (`lending.access`, in the views, the API and Slack's
commands); these functions assume it and validate only the data.

The invariant: at no moment do approved (incl. active) bookings of a cluster hold more GPUs than its
default partition has. Bookings hold whole nodes (Slurm 22.05 refuses `TRES=gres/gpu:N`
reservations), so a booking of 3 GPUs holds one 8-GPU node. Every write that can approve runs inside
`_cluster_lock`: a `SELECT … FOR UPDATE` of the Cluster row on PostgreSQL; on SQLite the write
transaction is IMMEDIATE (config/settings.py), which serializes writers; and re-checks there.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from lending.capacity import (
    SEARCH_DAYS,
    Capacity,
    Slot,
    availability,
    booked,
    capacity,
    describe_conflicts,
    free_gpus_now,
    next_free_window,
    peak_gpus,
    span,
)
from lending.jobs import accounts_for, idle_changes, idle_minutes, reservation_for_job, users_for
from lending.models import CalendarFeed, Reservation, ReservationEvent, SubteamQuota
from lending.usage import HELD_STATES, Usage, job_gpu_hours_in, usage, usage_by_subteam
from portal.models import Member, Subteam
from scheduler.models import Cluster

__all__ = [  # the reads other apps use, re-exported: everything goes through this module
    "HELD_STATES",
    "SEARCH_DAYS",
    "Capacity",
    "Decision",
    "Slot",
    "Usage",
    "accounts_for",
    "advance",
    "approve",
    "availability",
    "awaiting_approval",
    "booked",
    "cancel",
    "capacity",
    "change_window",
    "decide_each",
    "describe_conflicts",
    "free_gpus_now",
    "job_gpu_hours_in",
    "next_free_window",
    "peak_gpus",
    "reject",
    "request_reservation",
    "reservation_for_job",
    "usage",
    "usage_by_subteam",
    "users_for",
]  # fmt: skip

PAST_GRACE = dt.timedelta(minutes=5)  # a form filled in at 10:00 and sent at 10:02 still books "now"


def max_days() -> int:
    return int(getattr(settings, "LENDING_MAX_DAYS", 14))


def gpu_types() -> list[str]:
    """GPU types the clusters' nodes carry (scheduler.Node records the count, not the gres type)."""
    return list(getattr(settings, "LENDING_GPU_TYPES", ["h100"]))


# --- validation -----------------------------------------------------------------------------------------


@dataclass
class Request:
    subteam: Subteam
    cluster: Cluster
    start: dt.datetime
    end: dt.datetime
    purpose: str
    gpus: int | None = None
    gpu_type: str = ""
    nodes: list[str] = field(default_factory=list)


def _add(errors: dict[str, list[str]], name: str, message: str) -> None:
    errors.setdefault(name, []).append(message)


def _check_window(start: dt.datetime | None, end: dt.datetime | None, errors: dict[str, list[str]]) -> None:
    if start is None or end is None:
        if start is None:
            _add(errors, "start", _("Say when the booking starts."))
        if end is None:
            _add(errors, "end", _("Say when the booking ends."))
        return
    if timezone.is_naive(start) or timezone.is_naive(end):
        raise ValueError("lending needs aware datetimes")
    now = timezone.now()
    if end <= start:
        _add(errors, "end", _("The end must be after the start."))
    if end <= now:
        _add(errors, "end", _("This window is in the past."))
    elif start < now - PAST_GRACE:
        _add(errors, "start", _("The start is in the past; book from now on."))
    if end - start > dt.timedelta(days=max_days()):
        _add(errors, "end", _("A booking lasts at most %(days)d days.") % {"days": max_days()})


def validate(request: Request, *, exclude: Reservation | None = None) -> tuple[Capacity, int]:
    """Field errors for the request (ValidationError); else the cluster's capacity and the GPUs it holds."""
    errors: dict[str, list[str]] = {}
    cap = capacity(request.cluster)
    _check_window(request.start, request.end, errors)
    if not request.purpose.strip():
        _add(errors, "purpose", _("Say what the GPUs are for."))
    if not request.cluster.is_active:
        _add(errors, "cluster", _("This cluster is not active."))
    if not cap.nodes:
        _add(errors, "cluster", _("The cluster's inventory is not known yet: no nodes to book."))
    held = 0
    if request.nodes:  # named nodes win over a number of GPUs (the form keeps its default count)
        unknown = [n for n in request.nodes if n not in cap.nodes]
        if unknown:
            _add(
                errors,
                "nodes",
                _("The cluster has no node %(names)s in partition %(partition)s.")
                % {"names": ", ".join(unknown), "partition": request.cluster.default_partition},
            )
        if len(set(request.nodes)) != len(request.nodes):
            _add(errors, "nodes", _("A node is listed twice."))
        held = sum(cap.nodes.get(n, 0) for n in set(request.nodes))
    elif request.gpus is None or request.gpus < 1:
        _add(errors, "gpus", _("Book at least one GPU (or pick nodes)."))
    else:
        if request.gpus > cap.total_gpus and cap.nodes:
            _add(
                errors,
                "gpus",
                _("The cluster has only %(total)d GPUs in partition %(partition)s.")
                % {"total": cap.total_gpus, "partition": request.cluster.default_partition},
            )
        held = cap.held_gpus(request.gpus)
    if request.gpu_type and request.gpu_type not in gpu_types():
        _add(
            errors,
            "gpu_type",
            _("The cluster has no %(kind)s GPUs (it has %(kinds)s).")
            % {"kind": request.gpu_type, "kinds": ", ".join(gpu_types())},
        )
    if errors:
        raise ValidationError(errors)
    _check_room(request, held, exclude)
    return cap, held


def _check_room(request: Request, held: int, exclude: Reservation | None) -> None:
    """Refuse when the booked bookings leave no room (or hold one of the named nodes) in the window."""
    slots = availability(request.cluster, request.start, request.end, exclude=exclude)
    # Exact, not per hour: the peak over the window itself.
    others = [
        r for r in booked(request.cluster, request.start, request.end) if not exclude or r.pk != exclude.pk
    ]
    cap = capacity(request.cluster)
    problems: list[str] = []
    if peak_gpus(others, request.start, request.end) + held > cap.total_gpus:
        # The invariant counts the partition's GPUs; drained nodes are shown, not subtracted.
        room = [dataclasses.replace(s, free_gpus=s.total_gpus - s.booked_gpus) for s in slots]
        problems += describe_conflicts(room, held) or [_("Not enough GPUs are free in this window.")]
    if request.nodes:
        for r in others:
            taken = set(r.nodes) & set(request.nodes)
            if taken:
                problems.append(
                    _("%(nodes)s already booked %(when)s: '%(purpose)s' by %(name)s")
                    % {
                        "nodes": ", ".join(sorted(taken)),
                        "when": span(max(r.start, request.start), min(r.end, request.end)),
                        "purpose": r.purpose,
                        "name": r.requester.display_name,
                    }
                )
    if problems:
        raise ValidationError({NON_FIELD_ERRORS: problems})


# --- writes ---------------------------------------------------------------------------------------------


@contextmanager
def _cluster_lock(cluster: Cluster) -> Iterator[None]:
    """One writer per cluster at a time, inside a transaction (see the module docstring)."""
    with transaction.atomic():
        Cluster.objects.select_for_update().filter(pk=cluster.pk).first()
        yield


def _event(
    reservation: Reservation, kind: str, actor: Member | None, note: str = "", **changes: Any
) -> ReservationEvent:
    if kind not in ReservationEvent.Kind.values:  # the history shows each kind's label
        raise ValueError(f"no label for the booking event {kind!r}: add it to ReservationEvent.Kind")
    return ReservationEvent.objects.create(
        reservation=reservation, kind=kind, actor=actor, note=note, changes=changes
    )


def transition(
    reservation: Reservation,
    to: str,
    *,
    expect_from: tuple[str, ...],
    event: str,
    actor: Member | None = None,
    note: str = "",
    changes: dict[str, Any] | None = None,
    **fields: Any,
) -> bool:
    """The one door for a booking's state change: a conditional UPDATE (only from `expect_from`) and
    its `ReservationEvent`, in one transaction. The event row is the durable record (the Slack
    outbox reads these rows by cursor). False, with nothing written, when the state moved on."""
    with transaction.atomic():
        updated = Reservation.objects.filter(pk=reservation.pk, state__in=expect_from).update(
            state=to, **fields
        )
        if not updated:
            return False
        _event(reservation, event, actor, note, **(changes if changes is not None else {"state": to}))
        reservation.state = to
        for name, value in fields.items():
            setattr(reservation, name, value)
    return True


def _wake_worker() -> None:
    from scheduler.services import wakeup

    transaction.on_commit(wakeup.set)


def _quota_allows(reservation: Reservation) -> bool:
    """Within the subteam's quota: GPUs held at once, and GPU-hours in the week the booking starts."""
    quota = SubteamQuota.objects.filter(subteam_id=reservation.subteam_id).first()
    if quota is None or (quota.max_gpus is None and quota.max_gpu_hours_per_week is None):
        return False
    mine = list(
        Reservation.objects.filter(
            subteam_id=reservation.subteam_id, state__in=Reservation.BOOKED_STATES
        ).exclude(pk=reservation.pk)
    )
    if quota.max_gpus is not None:
        at_once = peak_gpus(mine, reservation.start, reservation.end) + reservation.held_gpus
        if at_once > quota.max_gpus:
            return False
    if quota.max_gpu_hours_per_week is not None:
        local = timezone.localtime(reservation.start)
        week_start = (local - dt.timedelta(days=local.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        week_end = week_start + dt.timedelta(days=7)
        used = sum(_clipped_hours(r, week_start, week_end) * r.held_gpus for r in [*mine, reservation])
        if used > quota.max_gpu_hours_per_week:
            return False
    return True


def _clipped_hours(r: Reservation, start: dt.datetime, end: dt.datetime) -> float:
    seconds = (min(r.end, end) - max(r.start, start)).total_seconds()
    return max(0.0, seconds / 3600)


def _mark_approved(
    reservation: Reservation, approver: Member | None, note: str, *, auto: bool = False
) -> bool:
    approved = transition(
        reservation,
        Reservation.State.APPROVED,
        expect_from=(Reservation.State.REQUESTED,),
        event="approved",
        actor=approver,
        note=note,
        approver=approver,
        decision_note=note,
        slurm_name=reservation.new_slurm_name(),
        sync_state=Reservation.Sync.CREATE,
        sync_error="",
        sync_attempted_at=None,
        sync_retry_at=None,
        sync_attempts=0,
        auto_approved=auto,
    )
    if approved:
        _wake_worker()
    return approved


def request_reservation(
    actor: Member,
    *,
    subteam: Subteam,
    cluster: Cluster,
    start: dt.datetime,
    end: dt.datetime,
    purpose: str,
    gpus: int | None = None,
    gpu_type: str = "",
    nodes: list[str] | None = None,
) -> Reservation:
    """Record a booking request; approve it at once when it is within the subteam's quota."""
    request = Request(
        subteam=subteam,
        cluster=cluster,
        start=start,
        end=end,
        purpose=(purpose or "").strip(),
        gpus=None if nodes else gpus,
        gpu_type=(gpu_type or "").strip(),
        nodes=sorted(nodes or []),
    )
    with _cluster_lock(cluster):
        cap, _held = validate(request)
        reservation = Reservation.objects.create(
            requester=actor,
            subteam=subteam,
            cluster=cluster,
            gpus=request.gpus,
            gpu_type=request.gpu_type,
            nodes=request.nodes,
            gpus_per_node=cap.gpus_per_node,
            start=start,
            end=end,
            purpose=request.purpose,
        )
        _event(
            reservation,
            "requested",
            actor,
            what=reservation.what,
            start=start.isoformat(),
            end=end.isoformat(),
        )
        if _quota_allows(reservation):
            _mark_approved(reservation, None, _("Within the subteam's quota."), auto=True)
    return reservation


def approve(actor: Member, reservation: Reservation, note: str = "") -> Reservation:
    with _cluster_lock(reservation.cluster):
        locked = Reservation.objects.select_related("cluster", "subteam").get(pk=reservation.pk)
        if locked.state != Reservation.State.REQUESTED:
            raise ValidationError(
                _("Only a requested booking can be approved (this one is %(state)s).")
                % {"state": locked.get_state_display()}
            )
        if locked.end <= timezone.now():
            raise ValidationError(_("This window is in the past."))
        _check_room(_request_of(locked), locked.held_gpus, locked)
        _mark_approved(locked, actor, note.strip())
    return locked


def awaiting_approval() -> QuerySet[Reservation]:
    """Requested bookings an admin can still decide on (a window in the past can only be rejected by
    time: `approve` refuses it)."""
    return Reservation.objects.filter(state=Reservation.State.REQUESTED, end__gt=timezone.now())


@dataclass(frozen=True)
class Decision:
    """What came of one booking of a decision on several: `problem` is '' when it was made."""

    reservation: Reservation
    problem: str = ""


def decide_each(
    actor: Member, reservations: list[Reservation], *, approve_them: bool, note: str = ""
) -> list[Decision]:
    """Approve (or reject, which needs a note) each booking in turn, earliest start first, through
    `approve` / `reject` with all their checks, each in its own transaction: one that no longer fits
    (or was decided meanwhile) is reported and the others are still decided."""
    if not approve_them and not (note or "").strip():
        raise ValidationError({"note": [_("Say why the booking is rejected.")]})
    decisions = []
    for r in sorted(reservations, key=lambda r: (r.start, r.pk)):
        try:
            if approve_them:
                approve(actor, r, note)
            else:
                reject(actor, r, note)
        except ValidationError as error:
            decisions.append(Decision(r, " ".join(error.messages)))
        else:
            decisions.append(Decision(r))
    return decisions


def _request_of(r: Reservation) -> Request:
    return Request(
        subteam=r.subteam,
        cluster=r.cluster,
        start=r.start,
        end=r.end,
        purpose=r.purpose,
        gpus=r.gpus,
        gpu_type=r.gpu_type,
        nodes=list(r.nodes),
    )


def reject(actor: Member, reservation: Reservation, note: str) -> Reservation:
    if not (note or "").strip():
        raise ValidationError({"note": [_("Say why the booking is rejected.")]})
    with transaction.atomic():
        locked = Reservation.objects.select_for_update().get(pk=reservation.pk)
        if locked.state != Reservation.State.REQUESTED:
            raise ValidationError(
                _("Only a requested booking can be rejected (this one is %(state)s).")
                % {"state": locked.get_state_display()}
            )
        transition(
            locked,
            Reservation.State.REJECTED,
            expect_from=(Reservation.State.REQUESTED,),
            event="rejected",
            actor=actor,
            note=note.strip(),
            approver=actor,
            decision_note=note.strip(),
        )
    return locked


def cancel(actor: Member, reservation: Reservation) -> Reservation:
    """The requester, the subteam's leads or an admin withdraw a booking; Slurm's copy is deleted."""
    with transaction.atomic():
        locked = Reservation.objects.select_for_update().get(pk=reservation.pk)
        if not locked.is_open:
            raise ValidationError(
                _("This booking is %(state)s already.") % {"state": locked.get_state_display()}
            )
        transition(
            locked,
            Reservation.State.CANCELLED,
            expect_from=(locked.state,),
            event="cancelled",
            actor=actor,
            changes={"state": ["cancelled", locked.state]},
            sync_state=Reservation.Sync.DELETE if locked.on_cluster else Reservation.Sync.SYNCED,
            sync_attempted_at=None,
            sync_retry_at=None,  # a person acted: the worker tries at once, whatever the backoff said
        )
        if locked.sync_state == Reservation.Sync.DELETE:
            _wake_worker()
    return locked


def change_window(
    actor: Member, reservation: Reservation, *, start: dt.datetime, end: dt.datetime
) -> Reservation:
    """Move or resize an open booking's window (same rules as a new one); Slurm's copy follows."""
    with _cluster_lock(reservation.cluster):
        locked = Reservation.objects.select_related("cluster", "subteam").get(pk=reservation.pk)
        if not locked.is_open:
            raise ValidationError(
                _("This booking is %(state)s already.") % {"state": locked.get_state_display()}
            )
        request = _request_of(locked)
        request.start, request.end = start, end
        validate(request, exclude=locked) if locked.is_booked else _check_window_only(start, end)
        changes = {
            "start": [locked.start.isoformat(), start.isoformat()],
            "end": [locked.end.isoformat(), end.isoformat()],
        }
        locked.start, locked.end = start, end
        fields = ["start", "end"]
        if locked.is_booked and (locked.on_cluster or locked.sync_state == Reservation.Sync.CREATE):
            # Not yet on the cluster (a create refused): the create takes the new window.
            if locked.on_cluster:
                locked.sync_state = Reservation.Sync.UPDATE
            locked.sync_attempted_at = None
            locked.sync_retry_at = None  # a person acted: the worker tries at once
            fields += ["sync_state", "sync_attempted_at", "sync_retry_at"]
            _wake_worker()
        locked.save(update_fields=fields)
        _event(locked, "changed", actor, "", **changes)
    return locked


def _check_window_only(start: dt.datetime, end: dt.datetime) -> None:
    errors: dict[str, list[str]] = {}
    _check_window(start, end, errors)
    if errors:
        raise ValidationError(errors)


def record_sync(
    reservation: Reservation, action: str, nodes: str | None, note: str = "", **names: str
) -> None:
    """History of what the worker did on the cluster (create / update / recreate / delete /
    delete_kept); `names`: the reservation's new Slurm name and the old one kept while jobs are in it."""
    _event(reservation, f"slurm_{action}", None, note, nodes=nodes or "", **names)


def mark_not_enforced(
    reservation: Reservation, reason: str, *, attempts: int, retry_at: dt.datetime, now: dt.datetime
) -> bool:
    """Slurm holds no reservation matching the booking (lending.sync, after its last try failed): the
    flag and a "not_enforced" event in one transaction, which the Slack outbox turns into a message to
    the subteam's channel naming the requester. Once per episode: False, with nothing written, when
    the booking is flagged already (later failures only count attempts on the row)."""
    with transaction.atomic():
        if not Reservation.objects.filter(pk=reservation.pk, not_enforced_since__isnull=True).update(
            not_enforced_since=now
        ):
            return False
        reservation.not_enforced_since = now
        _event(reservation, "not_enforced", None, reason, attempts=attempts, retry_at=retry_at.isoformat())
    return True


def mark_enforced(reservation: Reservation, nodes: str | None, *, announce: bool) -> bool:
    """The flag cleared when an attempt succeeds; with an "enforced" event when `announce` (the
    booking is held on the cluster again, not merely deleted with its booking). False when it was
    not flagged."""
    with transaction.atomic():
        if not Reservation.objects.filter(pk=reservation.pk, not_enforced_since__isnull=False).update(
            not_enforced_since=None
        ):
            return False
        reservation.not_enforced_since = None
        if announce:
            _event(reservation, "enforced", None, nodes=nodes or "")
    return True


# --- time passing (called by the worker through lending.sync) -----------------------------------------


def advance(cluster: Cluster, now: dt.datetime | None = None) -> int:
    """Mark bookings active when they start and finished when they end; flag active bookings for which
    no job ran for LENDING_IDLE_MINUTES, and clear the flag when one runs again (`lending.jobs`).
    Database only. Returns rows changed."""
    now = now or timezone.now()
    changed = 0
    for r in Reservation.objects.filter(cluster=cluster, state__in=Reservation.BOOKED_STATES, end__lte=now):
        if transition(
            r, Reservation.State.FINISHED, expect_from=(r.state,), event="finished", on_cluster=False
        ):
            changed += 1
    for r in Reservation.objects.filter(
        cluster=cluster, state=Reservation.State.APPROVED, start__lte=now, end__gt=now
    ):
        if transition(
            r,
            Reservation.State.ACTIVE,
            expect_from=(Reservation.State.APPROVED,),
            event="starting",
            changes={"state": "active"},
        ):
            changed += 1
    changed += _watch_idle(cluster, now)
    return changed


def _watch_idle(cluster: Cluster, now: dt.datetime) -> int:
    """Raise and clear the idle flags `lending.jobs.idle_changes` finds, each with its event ("idle",
    "in_use"), conditionally (a flag another worker moved meanwhile is left alone)."""
    changed = 0
    found = idle_changes(cluster, now)
    for r in found.quiet:
        with transaction.atomic():  # not a state change: a flag and its event, together
            if Reservation.objects.filter(pk=r.pk, idle_flagged_at__isnull=True).update(idle_flagged_at=now):
                r.idle_flagged_at = now
                note = _("No job of the subteam ran for %(n)d minutes.") % {"n": idle_minutes()}
                _event(r, ReservationEvent.Kind.IDLE, None, note)
                changed += 1
    for r in found.busy_again:
        with transaction.atomic():
            if Reservation.objects.filter(pk=r.pk, idle_flagged_at__isnull=False).update(
                idle_flagged_at=None
            ):
                r.idle_flagged_at = None
                _event(r, ReservationEvent.Kind.IN_USE, None)
                changed += 1
    return changed


# --- calendar feeds ---------------------------------------------------------------------------------------


def reset_calendar_feed(actor: Member | None, owner: Member | Subteam) -> str:
    """A new secret token for the owner's calendar feed: the one before stops working at once. Only its
    hash is stored; the token itself is returned, to be shown once."""
    token = CalendarFeed.new_token()
    values = {"token_hash": CalendarFeed.hash(token), "created_at": timezone.now(), "created_by": actor}
    if isinstance(owner, Member):
        CalendarFeed.objects.update_or_create(member=owner, defaults=values)
    else:
        CalendarFeed.objects.update_or_create(subteam=owner, defaults=values)
    return token
