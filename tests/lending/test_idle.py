"""The idle flag of an active booking (`services.advance`): raised when no job ran for the booking for
LENDING_IDLE_MINUTES, and only then.

The reported case: a booking flagged "idle" while the subteam's jobs ran in it. The flag was raised
once and never cleared, so a booking that was quiet for its first hour stayed "idle" for the rest of
its window whatever ran in it; and a booking that became active late (approved after its start) was
flagged in the same cycle, before any job could go in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from lending import services
from lending.models import KeptReservation, Reservation, ReservationEvent
from scheduler.models import Cluster, Job
from tests.personas import Team

MINUTE = dt.timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _quiet_hour(settings: Any) -> None:
    settings.LENDING_IDLE_MINUTES = 60


def active_booking(team: Team, lab: Cluster, *, began: dt.timedelta, **fields: object) -> Reservation:
    """An sft booking that began `began` ago, active since then (its "starting" event at its start)."""
    now = timezone.now()
    r = Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=lab, gpus=8, purpose="sft eval",
        start=now - began, end=now + dt.timedelta(hours=6), state="active", on_cluster=True,
        slurm_name="tanuki-7-a1b2c3", **fields,
    )  # fmt: skip
    ReservationEvent.objects.create(reservation=r, kind="starting", at=r.start)
    return r


def job(
    team: Team, lab: Cluster, *, started: dt.datetime | None, ended: dt.datetime | None = None, **kw: object
) -> Job:
    kw.setdefault("subteam", team.sft)
    kw.setdefault("state", "completed" if ended else "running")
    return Job.objects.create(
        name="sft", owner=team.member("member"), cluster=lab, command="x", script="x", partition="gpu",
        time_limit_minutes=600, gpus=8, started_at=started, ended_at=ended, **kw,
    )  # fmt: skip


def kinds(r: Reservation) -> list[str]:
    return list(r.events.exclude(kind="starting").values_list("kind", flat=True))


def test_the_flag_clears_when_the_subteams_job_runs_and_comes_back_when_it_is_quiet_again(
    team: Team, lab: Cluster
) -> None:
    r = active_booking(team, lab, began=dt.timedelta(hours=2))
    now = timezone.now()
    services.advance(lab, now)
    r.refresh_from_db()
    assert r.idle_flagged_at == now and kinds(r) == ["idle"]

    running = job(team, lab, started=now + 5 * MINUTE)  # the subteam's job goes in
    services.advance(lab, now + 10 * MINUTE)
    r.refresh_from_db()
    assert r.idle_flagged_at is None and kinds(r) == ["idle", "in_use"]
    page = team.client("member").get(reverse("lending:list")).content.decode()
    row = page[page.index(f'id="booking-{r.pk}"') :]
    assert 'class="badge risk"' not in row[: row.index("</tr>")]  # no "idle" badge while it runs

    services.advance(lab, now + 50 * MINUTE)  # still running: nothing new
    Job.objects.filter(pk=running.pk).update(state="completed", ended_at=now + 60 * MINUTE)
    services.advance(lab, now + 100 * MINUTE)  # ended 40 minutes ago: not idle yet
    assert kinds(r) == ["idle", "in_use"]
    services.advance(lab, now + 121 * MINUTE)
    r.refresh_from_db()
    assert r.idle_flagged_at == now + 121 * MINUTE and kinds(r) == ["idle", "in_use", "idle"]


def test_a_job_started_before_the_booking_and_still_running_keeps_it_busy(team: Team, lab: Cluster) -> None:
    r = active_booking(team, lab, began=dt.timedelta(hours=3))
    job(team, lab, started=timezone.now() - dt.timedelta(hours=5))
    services.advance(lab)
    r.refresh_from_db()
    assert r.idle_flagged_at is None and kinds(r) == []


def test_a_running_job_whose_start_is_not_recorded_yet_keeps_it_busy(team: Team, lab: Cluster) -> None:
    r = active_booking(team, lab, began=dt.timedelta(hours=3))
    job(team, lab, started=None, state="running")
    services.advance(lab)
    r.refresh_from_db()
    assert r.idle_flagged_at is None


def test_jobs_sent_into_its_reservations_count_whichever_subteam_they_carry(team: Team, lab: Cluster) -> None:
    r = active_booking(team, lab, began=dt.timedelta(hours=3))
    other = job(
        team, lab, started=timezone.now() - 30 * MINUTE, subteam=team.pretrain, reservation=r.slurm_name
    )
    services.advance(lab)
    r.refresh_from_db()
    assert r.idle_flagged_at is None
    # In the reservation the booking moved away from, kept while jobs run in it: counts too.
    KeptReservation.objects.create(
        reservation=r, name="tanuki-7-0ld000", ends_at=r.end, retry_at=timezone.now()
    )
    Job.objects.filter(pk=other.pk).update(reservation="tanuki-7-0ld000")
    services.advance(lab)
    r.refresh_from_db()
    assert r.idle_flagged_at is None
    # Another subteam's job elsewhere on the cluster does not.
    Job.objects.filter(pk=other.pk).update(reservation="")
    services.advance(lab)
    r.refresh_from_db()
    assert r.idle_flagged_at is not None


def test_a_booking_approved_after_its_start_gets_its_quiet_hour_from_then(team: Team, lab: Cluster) -> None:
    now = timezone.now()
    r = Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=lab, gpus=8, purpose="late",
        start=now - dt.timedelta(hours=3), end=now + dt.timedelta(hours=3), state="approved",
    )  # fmt: skip
    services.advance(lab, now)  # becomes active now: no job could be in it yet
    r.refresh_from_db()
    assert r.state == "active" and r.idle_flagged_at is None
    services.advance(lab, now + 30 * MINUTE)
    r.refresh_from_db()
    assert r.idle_flagged_at is None
    services.advance(lab, now + 61 * MINUTE)
    r.refresh_from_db()
    assert r.idle_flagged_at is not None


def test_a_booking_slurm_does_not_enforce_is_not_called_idle(team: Team, lab: Cluster) -> None:
    r = active_booking(team, lab, began=dt.timedelta(hours=3), not_enforced_since=timezone.now())
    services.advance(lab)
    r.refresh_from_db()
    assert r.idle_flagged_at is None and kinds(r) == []


def test_only_labelled_events_are_recorded(team: Team, lab: Cluster) -> None:
    r = active_booking(team, lab, began=dt.timedelta(hours=1))
    with pytest.raises(ValueError, match="no label"):
        services._event(r, "made_up", None)
