"""Bookings and jobs: which Slurm accounts (or users) a booking's reservation admits, which reservation
a job is sent into, and whether jobs ran for a booking (its idle flag). Read only: `lending.services`
re-exports these and writes what they find."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Max, Q
from django.utils import timezone

from lending.models import KeptReservation, Reservation, ReservationEvent
from portal.models import Membership
from scheduler.models import Cluster, ClusterAccount, Job, SubteamAccount


def idle_minutes() -> int:
    return int(getattr(settings, "LENDING_IDLE_MINUTES", 60))


def accounts_for(subteam_id: int, cluster: Cluster) -> list[str]:
    """The Slurm accounts a subteam's reservation admits: its mapping, else the cluster's default."""
    mapped = sorted(
        SubteamAccount.objects.filter(subteam_id=subteam_id, cluster=cluster).values_list(
            "account", flat=True
        )
    )  # the scheduler's mapping: the same account the subteam's jobs run under
    if mapped:
        return mapped
    return [cluster.default_account] if cluster.default_account else []


def users_for(subteam_id: int, cluster: Cluster) -> list[str]:
    """The cluster users a subteam's reservation admits when it has no Slurm account: its current
    members' own users (the service account's alone on a cluster in the shared mode)."""
    if cluster.is_shared:
        return [cluster.username]
    members = Membership.objects.filter(subteam_id=subteam_id, ended__isnull=True).values("member_id")
    users = ClusterAccount.objects.filter(cluster=cluster, member_id__in=members).values_list(
        "username", flat=True
    )
    return sorted(users) or [cluster.username]


def reservation_for_job(job: Job) -> str | None:
    """The Slurm reservation a job of job.subteam on job.cluster should use if submitted now: a booked
    window of its subteam that covers now, exists on the cluster, admits the job's account and lasts
    for the job's time limit (a job longer than the reservation would wait in vain)."""
    now = timezone.now()
    candidates = Reservation.objects.filter(
        cluster_id=job.cluster_id,
        subteam_id=job.subteam_id,
        state__in=Reservation.BOOKED_STATES,
        on_cluster=True,
        start__lte=now,
        end__gt=now + dt.timedelta(minutes=job.time_limit_minutes),
    ).order_by("end")
    for reservation in candidates:
        accounts = accounts_for(reservation.subteam_id, job.cluster)
        account = job.account or job.cluster.default_account
        if not accounts or account in accounts:
            return reservation.slurm_name
    return None


# --- the idle flag ----------------------------------------------------------------------------------------


# Since when a booking could hold the subteam's jobs: its "starting" (a booking approved after its start
# becomes active then) or its latest "enforced" (Slurm held nothing for it before).
_HELD_SINCE = (ReservationEvent.Kind.STARTING, ReservationEvent.Kind.ENFORCED)


def ran_since(r: Reservation, since: dt.datetime) -> bool:
    """Whether a job ran for the booking in [since, now]: a job of its subteam on its cluster, or any job
    sent into its Slurm reservation (the current one or one kept while jobs run in it). Running, however
    long ago it started (before the booking, too), or ended after `since`."""
    names = KeptReservation.objects.filter(reservation_id=r.pk).values("name")
    mine = Q(subteam_id=r.subteam_id) | Q(reservation__in=names)
    if r.slurm_name:
        mine |= Q(reservation=r.slurm_name)
    ran = Q(state=Job.State.RUNNING) | Q(started_at__isnull=False, ended_at__gt=since)
    return Job.objects.filter(mine, ran, cluster_id=r.cluster_id).exists()


@dataclass
class IdleChanges:
    """What `idle_changes` found, for `services.advance` to write."""

    quiet: list[Reservation] = field(default_factory=list)  # to flag idle
    busy_again: list[Reservation] = field(default_factory=list)  # flagged, a job runs: to clear


def idle_changes(cluster: Cluster, now: dt.datetime) -> IdleChanges:
    """The active bookings to flag idle: no job ran for them (`ran_since`) for LENDING_IDLE_MINUTES
    since they could hold jobs (their start, or when they became active or were enforced again if
    later), not while Slurm does not enforce them (jobs cannot go in then); and the flagged ones to
    clear, a job running for them again, so that the flag says what is true now."""
    quiet = dt.timedelta(minutes=idle_minutes())
    changes = IdleChanges()
    active = Reservation.objects.filter(
        cluster=cluster, state=Reservation.State.ACTIVE, start__lte=now - quiet
    ).annotate(held_since=Max("events__at", filter=Q(events__kind__in=_HELD_SINCE)))
    for r in active:
        ran = ran_since(r, now - quiet)
        if ran:
            if r.idle_flagged_at is not None:
                changes.busy_again.append(r)
            continue
        # Approved late or enforced again: it has not been quiet for long.
        quiet_long = r.held_since is None or r.held_since <= now - quiet
        if r.idle_flagged_at is None and r.not_enforced_since is None and quiet_long:
            changes.quiet.append(r)
    return changes
