"""The lending services: validation, the capacity invariant (also under concurrency), quotas, jobs.

Who may call them is `lending.access`'s (tests/lending/test_access.py); the pages and the API refuse
the others before any service runs (test_web.py, test_api.py)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.utils import timezone

from lending import services
from lending.models import Reservation, ReservationEvent, SubteamQuota
from scheduler.models import Cluster, Job, SubteamAccount
from tests.lending.conftest import make_cluster, soon
from tests.personas import Team, make_team


def errors_of(excinfo: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return excinfo.value.message_dict


@pytest.mark.parametrize(
    ("changes", "field", "text"),
    [
        ({"start": -1, "end": -2}, "end", "The end must be after the start."),
        ({"start": -30, "end": -28}, "end", "This window is in the past."),
        ({"start": -5, "end": 2}, "start", "The start is in the past"),
        ({"gpus": 40}, "gpus", "only 32 GPUs"),
        ({"gpus": 0}, "gpus", "at least one GPU"),
        ({"nodes": ["node9"]}, "nodes", "no node node9"),
        ({"gpu_type": "h200"}, "gpu_type", "no h200 GPUs"),
        ({"purpose": " "}, "purpose", "Say what the GPUs are for."),
    ],
)
def test_it_refuses_bad_requests_and_records_nothing(
    team: Team, lab: Cluster, changes: dict[str, object], field: str, text: str
) -> None:
    kwargs: dict[str, object] = {"gpus": 8, "purpose": "sft eval", "start": soon(1), "end": soon(3)}
    for key, value in changes.items():
        kwargs[key] = soon(value) if key in ("start", "end") else value  # type: ignore[arg-type]
    if "nodes" in changes:
        kwargs.pop("gpus")
    with pytest.raises(ValidationError) as excinfo:
        services.request_reservation(team.member("member"), subteam=team.sft, cluster=lab, **kwargs)  # type: ignore[arg-type]
    assert any(text in message for message in errors_of(excinfo)[field]), errors_of(excinfo)
    assert not Reservation.objects.exists() and not ReservationEvent.objects.exists()


def test_a_request_waits_for_an_admin_and_approval_makes_it_a_slurm_reservation(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member", gpus=3)
    assert r.state == "requested" and r.held_gpus == 8 and r.sync_state == "synced"
    services.approve(team.member("admin"), r, "ok")
    r.refresh_from_db()
    assert (r.state, r.sync_state, r.approver) == ("approved", "create", team.member("admin"))
    assert r.slurm_name.startswith(f"tanuki-{r.pk}-") and len(r.slurm_name) == len(f"tanuki-{r.pk}-") + 6
    events = list(r.events.order_by("pk").values_list("kind", "actor", "changes"))
    assert events[0][0] == "requested"
    assert events[1] == ("approved", team.member("admin").pk, {"state": "approved"})
    assert list(r.events.values_list("kind", flat=True)) == ["requested", "approved"]


def test_reject_needs_a_note(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    with pytest.raises(ValidationError):
        services.reject(team.member("admin"), r, " ")
    services.reject(team.member("admin"), r, "the cluster is for the final push that week")
    r.refresh_from_db()
    assert r.state == "rejected" and r.decision_note.startswith("the cluster")


def test_a_cancelled_booking_cannot_be_cancelled_again(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member")
    services.cancel(team.member("lead"), r)
    r.refresh_from_db()
    assert r.state == "cancelled"
    with pytest.raises(ValidationError):
        services.cancel(team.member("admin"), r)


def test_approval_never_overbooks_the_partition(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    admin = team.member("admin")
    first = book("member", gpus=24, hours=(1, 5))
    second = book("lead", gpus=16, hours=(3, 6))  # requests may overlap: an admin chooses
    services.approve(admin, first)
    with pytest.raises(ValidationError) as excinfo:
        services.approve(admin, second)
    message = " ".join(excinfo.value.messages)
    assert "only 8 GPUs free" in message and "'sft eval' by Member (Fine-tuning) books 24" in message
    second.refresh_from_db()
    assert second.state == "requested"
    # And a new request that cannot fit is refused outright, with the same explanation.
    with pytest.raises(ValidationError) as excinfo:
        book("member", gpus=16, hours=(2, 3))
    assert "only 8 GPUs free" in " ".join(excinfo.value.messages)
    assert services.availability(lab, soon(1), soon(6))[0].booked_gpus == 24


def test_specific_nodes_cannot_be_booked_twice(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    r = book("member", nodes=["node4"])
    services.approve(team.member("admin"), r)
    with pytest.raises(ValidationError) as excinfo:
        book("lead", nodes=["node4", "node3"], hours=(2, 4))
    assert "node4 already booked" in " ".join(excinfo.value.messages)


def test_availability_per_hour(team: Team, lab: Cluster, book) -> None:  # type: ignore[no-untyped-def]
    Cluster.objects.filter(pk=lab.pk)  # 4 nodes x 8 GPUs
    lab.nodes.filter(name="node3").update(unavailable=True, state="DRAIN")
    r = book("member", gpus=9, hours=(1, 3))
    services.approve(team.member("admin"), r)
    slots = services.availability(lab, soon(0), soon(4))
    assert [s.booked_gpus for s in slots] == [0, 16, 16, 0]
    assert [s.free_gpus for s in slots] == [24, 8, 8, 24]
    assert all(s.total_gpus == 32 and s.unavailable_gpus == 8 for s in slots)
    assert slots[1].conflicts == [r] and slots[0].conflicts == []
    assert services.availability(lab, soon(0), soon(4), exclude=r)[1].booked_gpus == 0
    assert services.free_gpus_now(lab) == 24


def test_quota_auto_approves_within_limits(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    SubteamQuota.objects.create(subteam=team.sft, max_gpus=16, max_gpu_hours_per_week=100)
    within = book("member", gpus=16, hours=(1, 3))  # 32 GPU-hours
    assert within.state == "approved" and within.auto_approved and within.approver is None
    too_many_at_once = book("member", gpus=8, hours=(2, 3))
    assert too_many_at_once.state == "requested"
    too_long = book("member", gpus=8, hours=(4, 14))  # 80 more GPU-hours: over 100 in the week
    assert too_long.state == "requested"


def test_reservation_for_job_needs_a_window_on_the_cluster_that_covers_the_job(
    team: Team, lab: Cluster
) -> None:
    now = timezone.now()
    r = Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=lab, gpus=8, purpose="x",
        start=now - dt.timedelta(minutes=5), end=now + dt.timedelta(hours=2), state="active",
        slurm_name="tanuki-77", on_cluster=True,
    )  # fmt: skip
    job = Job(subteam=team.sft, cluster=lab, time_limit_minutes=60, account="", owner=team.member("member"))
    assert services.reservation_for_job(job) == "tanuki-77"
    assert (
        services.reservation_for_job(Job(subteam=team.pretrain, cluster=lab, time_limit_minutes=60)) is None
    )
    assert services.reservation_for_job(Job(subteam=team.sft, cluster=lab, time_limit_minutes=600)) is None
    SubteamAccount.objects.create(subteam=team.sft, cluster=lab, account="sft")
    assert services.reservation_for_job(job) is None  # the job's account (tanuki) is not admitted
    job.account = "sft"
    assert services.reservation_for_job(job) == "tanuki-77"
    r.on_cluster = False
    r.save()
    assert services.reservation_for_job(job) is None


def test_time_passing_marks_active_idle_and_finished(team: Team, lab: Cluster, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LENDING_IDLE_MINUTES = 30
    now = timezone.now()
    r = Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=lab, gpus=8, purpose="x",
        start=now - dt.timedelta(hours=1), end=now + dt.timedelta(hours=1), state="approved",
    )  # fmt: skip
    busy = Reservation.objects.create(
        requester=team.member("other"), subteam=team.pretrain, cluster=lab, gpus=8, purpose="y",
        start=now - dt.timedelta(hours=1), end=now + dt.timedelta(hours=1), state="approved",
    )  # fmt: skip
    Job.objects.create(
        name="tok", owner=team.member("other"), subteam=team.pretrain, cluster=lab, command="x", script="x",
        partition="gpu", time_limit_minutes=60, state="running", started_at=now - dt.timedelta(minutes=50),
    )  # fmt: skip
    services.advance(lab, now)  # both start (late: quiet is counted from now on)
    later = now + dt.timedelta(minutes=31)
    services.advance(lab, later)
    services.advance(lab, later)  # idle is flagged once
    services.advance(lab, now + dt.timedelta(hours=2))
    sent = list(
        ReservationEvent.objects.filter(kind__in=["starting", "idle", "finished"])
        .order_by("pk")
        .values_list("reservation_id", "kind")
    )
    assert sent == [
        (r.pk, "starting"), (busy.pk, "starting"), (r.pk, "idle"), (r.pk, "finished"), (busy.pk, "finished"),
    ]  # fmt: skip
    r.refresh_from_db()
    busy.refresh_from_db()
    assert r.idle_flagged_at is not None and busy.idle_flagged_at is None


def test_booked_vs_used(team: Team, lab: Cluster) -> None:
    start = timezone.now() - dt.timedelta(hours=10)
    r = Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=lab, gpus=16, purpose="x",
        start=start, end=start + dt.timedelta(hours=4), state="finished",
    )  # fmt: skip

    def job(subteam, begin: float, end: float, gpu_hours: float) -> None:  # type: ignore[no-untyped-def]
        Job.objects.create(
            name="j", owner=team.member("member"), subteam=subteam, cluster=lab, command="x", script="x",
            partition="gpu", time_limit_minutes=600, state="completed", gpus=8, gpu_hours=gpu_hours,
            started_at=start + dt.timedelta(hours=begin), ended_at=start + dt.timedelta(hours=end),
        )  # fmt: skip

    job(team.sft, 1, 3, 16)  # wholly inside: 16
    job(team.sft, 3, 5, 16)  # half inside: 8
    job(team.pretrain, 1, 3, 16)  # another subteam: not counted
    usage = services.usage([r])[r.pk]
    assert usage.booked_gpu_hours == 64 and usage.used_gpu_hours == 24 and usage.percent == 38
    [(subteam, total)] = services.usage_by_subteam([r])
    assert subteam == team.sft and total.used_gpu_hours == 24


# --- concurrency: exactly one of two requests for the last free GPUs is approved ---------------------------


@pytest.mark.django_db(transaction=True)
def test_two_requests_for_the_last_gpus_at_once_approve_exactly_one() -> None:
    team = make_team()
    lab = make_cluster("race")
    SubteamQuota.objects.create(subteam=team.sft, max_gpus=32)
    SubteamQuota.objects.create(subteam=team.pretrain, max_gpus=32)
    start, end = soon(1), soon(3)
    taken = services.request_reservation(
        team.member("admin"),
        subteam=team.management,
        cluster=lab,
        start=start,
        end=end,
        purpose="base",
        gpus=24,
    )
    services.approve(team.member("admin"), taken)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def ask(role: str, subteam_name: str) -> None:
        try:
            barrier.wait(timeout=10)
            r = services.request_reservation(
                team.member(role), subteam=getattr(team, subteam_name), cluster=lab,
                start=start, end=end, purpose=role, gpus=8,
            )  # fmt: skip
            outcomes.append(r.state)
        except ValidationError as error:
            outcomes.append("refused: " + " ".join(error.messages))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=ask, args=args) for args in (("member", "sft"), ("other", "pretrain"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(o.split(":")[0] for o in outcomes) == ["approved", "refused"], outcomes
    booked = Reservation.objects.filter(cluster=lab, state__in=Reservation.BOOKED_STATES)
    assert sum(r.held_gpus for r in booked) == 32
    assert connection.vendor in ("sqlite", "postgresql")


def test_per_subteam_totals_count_only_bookings_that_held_gpus(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    held = services.approve(team.member("admin"), book("member", gpus=8, hours=(1, 3)))
    asked = book("other", gpus=8, hours=(1, 3))
    rejected = book("other", gpus=8, hours=(4, 5))
    services.reject(team.member("admin"), rejected, "no")
    totals = services.usage_by_subteam([held, asked, Reservation.objects.get(pk=rejected.pk)])
    assert [(subteam.slug, usage.booked_gpu_hours) for subteam, usage in totals] == [("sft", 16.0)]
