"""Demo bookings for the lending list: a handful across subteams, relative to `today`
(demo/data/bookings.yaml).

Called by `manage.py stage_demo_assets` once the team and a cluster exist. Safe to re-run (bookings are keyed on
cluster, subteam and purpose). Without a cluster it does nothing. Approved bookings that have not
ended are left for the scheduler's worker to reserve on the cluster, as real ones would be.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from demo import datafiles
from lending import services
from lending.models import Reservation, ReservationEvent
from portal.models import Membership, Subteam
from scheduler.models import Cluster


@dataclass(frozen=True)
class Booking:
    subteam: str
    purpose: str
    day: int  # days from today
    start_hour: int
    hours: int
    state: str
    gpus: int | None = 8
    node: str = ""
    note: str = ""


@functools.cache
def bookings() -> tuple[Booking, ...]:
    return tuple(Booking(**row) for row in datafiles.read("bookings.yaml"))


def _requester(subteam: Subteam) -> Membership | None:
    return (
        Membership.objects.filter(subteam=subteam, ended__isnull=True)
        .select_related("member")
        .order_by("role", "pk")  # leads first
        .first()
    )


@transaction.atomic
def load(today: dt.date) -> int:
    """Create the demo bookings that do not exist yet; returns how many were created."""
    cluster = Cluster.objects.filter(is_active=True).order_by("pk").first()
    if cluster is None:
        return 0
    cap = services.capacity(cluster)
    admin = Membership.objects.filter(subteam__is_management=True, ended__isnull=True).select_related(
        "member"
    )
    approver = admin.first()
    created = 0
    for spec in bookings():
        subteam = Subteam.objects.filter(slug=spec.subteam).first()
        membership = _requester(subteam) if subteam else None
        if subteam is None or membership is None:
            continue
        start = timezone.make_aware(
            dt.datetime.combine(today + dt.timedelta(days=spec.day), dt.time(spec.start_hour))
        )
        end = start + dt.timedelta(hours=spec.hours)
        nodes = [spec.node] if spec.node and spec.node in cap.nodes else []
        booked = spec.state in ("approved", "finished")
        reservation, made = Reservation.objects.get_or_create(
            cluster=cluster,
            subteam=subteam,
            purpose=spec.purpose,
            defaults={
                "requester": membership.member,
                "gpus": None if nodes else (spec.gpus or 8),
                "nodes": nodes,
                "gpus_per_node": cap.gpus_per_node,
                "start": start,
                "end": end,
                "state": spec.state,
                "approver": approver.member if approver and spec.state != "requested" else None,
                "decision_note": spec.note,
            },
        )
        if not made:
            continue
        created += 1
        ReservationEvent.objects.create(reservation=reservation, kind="requested", actor=membership.member)
        if spec.state != "requested":
            kind = "rejected" if spec.state == "rejected" else "approved"
            ReservationEvent.objects.create(
                reservation=reservation, kind=kind, actor=reservation.approver, note=spec.note
            )
        if booked:
            reservation.slurm_name = reservation.new_slurm_name()
            live = spec.state == "approved" and end > timezone.now()
            reservation.sync_state = Reservation.Sync.CREATE if live else Reservation.Sync.SYNCED
            reservation.save(update_fields=["slurm_name", "sync_state"])
    return created
