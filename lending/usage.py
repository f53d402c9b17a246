"""GPU-hours booked vs used, per booking and per subteam. Read only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Q
from django.utils import formats, timezone

from lending.models import Reservation
from portal.models import Subteam
from scheduler.models import Job


def job_gpu_hours_in(job: Job, start: dt.datetime, end: dt.datetime, now: dt.datetime | None = None) -> float:
    """A job's GPU-hours within [start, end): its accounted GPU-hours (or GPUs × runtime while it runs),
    pro rata for the part of its run inside the window."""
    if job.started_at is None:
        return 0.0
    job_end = job.ended_at or now or timezone.now()
    run = (job_end - job.started_at).total_seconds()
    inside = (min(job_end, end) - max(job.started_at, start)).total_seconds()
    if run <= 0 or inside <= 0:
        return 0.0
    total = job.gpu_hours if job.ended_at and job.gpu_hours else job.gpus * run / 3600
    return total * inside / run


@dataclass
class Usage:
    booked_gpu_hours: float = 0.0
    used_gpu_hours: float = 0.0

    @property
    def share(self) -> float:
        """Used of booked, in percent, unrounded (the width of its bar)."""
        return 100 * self.used_gpu_hours / self.booked_gpu_hours if self.booked_gpu_hours else 0.0

    @property
    def percent(self) -> int:
        return round(self.share)

    @property
    def percent_label(self) -> str:
        """The share in words a reader can trust: "0.5%" for 1.3 of 288 GPU-hours, not "0%" (a whole
        number from 10% on; "<0.1%" when something was used but less than that)."""
        share = self.share
        if share == 0:
            return "0%"
        if share < 0.05:
            return "<" + formats.number_format(0.1, 1) + "%"
        if share < 9.95:  # rounded here: number_format cuts the digits off
            return formats.number_format(round(share, 1), 1) + "%"
        return f"{round(share)}%"


def usage(reservations: list[Reservation]) -> dict[int, Usage]:
    """Booked vs used GPU-hours per booking, with one query for the jobs of all of them."""
    if not reservations:
        return {}
    start = min(r.start for r in reservations)
    end = max(r.end for r in reservations)
    jobs = list(
        Job.objects.filter(
            subteam_id__in={r.subteam_id for r in reservations},
            cluster_id__in={r.cluster_id for r in reservations},
            started_at__isnull=False,
            started_at__lt=end,
        ).filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start))
    )
    now = timezone.now()
    result = {}
    for r in reservations:
        used = sum(
            job_gpu_hours_in(job, r.start, min(r.end, now), now)
            for job in jobs
            if job.subteam_id == r.subteam_id and job.cluster_id == r.cluster_id
        )
        result[r.pk] = Usage(booked_gpu_hours=r.gpu_hours_booked, used_gpu_hours=round(used, 2))
    return result


HELD_STATES = (*Reservation.BOOKED_STATES, Reservation.State.FINISHED)


def usage_by_subteam(reservations: list[Reservation]) -> list[tuple[Subteam, Usage]]:
    """Totals over the bookings that held GPUs (approved, active, finished), per subteam."""
    reservations = [r for r in reservations if r.state in HELD_STATES]
    per = usage(reservations)
    totals: dict[int, tuple[Subteam, Usage]] = {}
    for r in reservations:
        _subteam, total = totals.setdefault(r.subteam_id, (r.subteam, Usage()))
        total.booked_gpu_hours += per[r.pk].booked_gpu_hours
        total.used_gpu_hours += per[r.pk].used_gpu_hours
    return sorted(totals.values(), key=lambda pair: pair[0].name)
