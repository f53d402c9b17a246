"""What a cluster can lend and what is booked: capacity from the scheduler's inventory, the peak of
bookings over a window, free GPUs per hour, and conflicts explained in words. Read only."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.utils import formats, timezone
from django.utils.translation import gettext as _

from lending.models import Reservation
from scheduler.models import Cluster, Node, whole_nodes

HOUR = dt.timedelta(hours=1)
SEARCH_DAYS = 14  # how far after the asked start `next_free_window` looks


@dataclass(frozen=True)
class Capacity:
    """The cluster's default partition as the scheduler's inventory last saw it."""

    nodes: dict[str, int]  # node name -> GPUs
    unavailable: dict[str, str]  # drained/down node name -> reason or state

    @property
    def total_gpus(self) -> int:
        return sum(self.nodes.values())

    @property
    def unavailable_gpus(self) -> int:
        return sum(self.nodes[name] for name in self.unavailable)

    @property
    def gpus_per_node(self) -> int:
        return max(self.nodes.values(), default=8) or 8

    def held_gpus(self, gpus: int) -> int:
        """The GPUs a booking of `gpus` holds: whole nodes' worth."""
        return whole_nodes(gpus, self.gpus_per_node) * self.gpus_per_node


def capacity(cluster: Cluster) -> Capacity:
    nodes: dict[str, int] = {}
    unavailable: dict[str, str] = {}
    for node in Node.objects.filter(cluster=cluster).order_by("name"):
        if cluster.default_partition not in node.partitions.split(","):
            continue
        nodes[node.name] = node.gpus_total
        if node.unavailable:
            unavailable[node.name] = node.reason or node.state
    return Capacity(nodes=nodes, unavailable=unavailable)


@dataclass
class Slot:
    start: dt.datetime
    end: dt.datetime
    total_gpus: int
    booked_gpus: int
    free_gpus: int
    unavailable_gpus: int
    conflicts: list[Reservation] = field(default_factory=list)

    @property
    def booked_percent(self) -> int:
        return round(100 * self.booked_gpus / self.total_gpus) if self.total_gpus else 100

    @property
    def free_percent(self) -> int:
        return round(100 * self.free_gpus / self.total_gpus) if self.total_gpus else 0


def booked(cluster: Cluster, start: dt.datetime, end: dt.datetime) -> QuerySet[Reservation]:
    """Approved and active bookings of the cluster overlapping [start, end)."""
    return Reservation.objects.filter(
        cluster=cluster, state__in=Reservation.BOOKED_STATES, start__lt=end, end__gt=start
    ).select_related("subteam", "requester")


def _exclude_pk(exclude: Reservation | int | None) -> int | None:
    return exclude.pk if isinstance(exclude, Reservation) else exclude


def peak_gpus(reservations: Iterable[Reservation], start: dt.datetime, end: dt.datetime) -> int:
    """The most GPUs the bookings hold at any one moment within [start, end) (a sweep over their edges)."""
    edges: list[tuple[dt.datetime, int]] = []
    for r in reservations:
        if r.start < end and start < r.end:
            edges.append((max(r.start, start), r.held_gpus))
            edges.append((min(r.end, end), -r.held_gpus))
    edges.sort(key=lambda edge: (edge[0], edge[1]))  # ends before starts at the same instant
    peak = level = 0
    for _at, delta in edges:
        level += delta
        peak = max(peak, level)
    return peak


def _hour_floor(value: dt.datetime) -> dt.datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def availability(
    cluster: Cluster, start: dt.datetime, end: dt.datetime, *, exclude: Reservation | int | None = None
) -> list[Slot]:
    """Free GPUs per hour over [start, end): total of the default partition, minus booked (the peak
    within the hour), minus drained/down nodes (as last seen: the inventory has no future)."""
    cap = capacity(cluster)
    slot_start = _hour_floor(start)
    rows = list(booked(cluster, slot_start, end).exclude(pk=_exclude_pk(exclude) or 0).order_by("start"))
    slots: list[Slot] = []
    first = 0  # rows are sorted by start; rows that ended before this slot are skipped cheaply
    while slot_start < end:
        slot_end = slot_start + HOUR
        here = [r for r in rows[first:] if r.start < slot_end and slot_start < r.end]
        while first < len(rows) and rows[first].end <= slot_start and rows[first].start <= slot_start:
            first += 1
        taken = peak_gpus(here, slot_start, slot_end)
        slots.append(
            Slot(
                start=slot_start,
                end=slot_end,
                total_gpus=cap.total_gpus,
                booked_gpus=taken,
                free_gpus=max(0, cap.total_gpus - taken - cap.unavailable_gpus),
                unavailable_gpus=cap.unavailable_gpus,
                conflicts=here,
            )
        )
        slot_start = slot_end
    return slots


def free_gpus_now(cluster: Cluster) -> int:
    """GPUs neither booked nor on drained/down nodes at this moment."""
    now = timezone.now()
    cap = capacity(cluster)
    held = sum(r.held_gpus for r in booked(cluster, now, now + dt.timedelta(microseconds=1)))
    return max(0, cap.total_gpus - cap.unavailable_gpus - held)


def when(value: dt.datetime) -> str:
    return formats.date_format(timezone.localtime(value), "D H:i")


def span(start: dt.datetime, end: dt.datetime) -> str:
    return f"{when(start)}–{formats.date_format(timezone.localtime(end), 'H:i')}"


def describe_conflicts(slots: list[Slot], need: int) -> list[str]:
    """In words, each run of hours where fewer than `need` GPUs are free, and which bookings hold them:
    "Tue 10:00–12:00: only 4 GPUs free: 'sft eval' by Sato books 8"."""
    lines = []
    for _short, run_iter in itertools.groupby(slots, key=lambda s: s.free_gpus < need):
        run = list(run_iter)
        if not _short:
            continue
        free = min(s.free_gpus for s in run)
        holders: dict[int, Reservation] = {}
        for slot in run:
            for r in slot.conflicts:
                holders.setdefault(r.pk, r)
        who = "; ".join(
            _("'%(purpose)s' by %(name)s (%(subteam)s) books %(gpus)d")
            % {
                "purpose": r.purpose,
                "name": r.requester.display_name,
                "subteam": r.subteam.name,
                "gpus": r.held_gpus,
            }
            for r in holders.values()
        )
        text = _("%(when)s: only %(free)d GPUs free") % {
            "when": span(run[0].start, run[-1].end),
            "free": free,
        }
        if who:
            text += ": " + who
        lines.append(text)
    return lines


def _fits(
    others: list[Reservation], start: dt.datetime, end: dt.datetime, need: int, total: int, nodes: set[str]
) -> bool:
    if peak_gpus(others, start, end) + need > total:
        return False
    return not nodes or not any(nodes & set(r.nodes) for r in others if r.overlaps(start, end))


def next_free_window(
    cluster: Cluster,
    start: dt.datetime,
    end: dt.datetime,
    need: int,
    *,
    nodes: Iterable[str] = (),
    exclude: Reservation | int | None = None,
    days: int = SEARCH_DAYS,
) -> tuple[dt.datetime, dt.datetime] | None:
    """The earliest window as long as [start, end), starting at `start` or later (within `days`), in
    which `need` GPUs fit beside the booked bookings (the invariant's rule: the partition's GPUs, by the
    exact peak) and none of `nodes` is booked. None when there is none, or `need` exceeds the cluster.

    1. Read the bookings over the whole search range once (one query).
    2. Room only grows where a booking ends, so the candidates are `start` and each booking end after it.
    3. Return the first candidate whose window fits (the exact sweep of `peak_gpus`)."""
    total = capacity(cluster).total_gpus
    if need > total or end <= start:
        return None
    length = end - start
    horizon = start + dt.timedelta(days=days)
    excluded = _exclude_pk(exclude) or 0
    others = list(booked(cluster, start, horizon + length).exclude(pk=excluded))
    wanted = set(nodes)
    candidates = sorted({start, *(r.end for r in others if start < r.end <= horizon)})
    for candidate in candidates:
        if _fits(others, candidate, candidate + length, need, total, wanted):
            return candidate, candidate + length
    return None
