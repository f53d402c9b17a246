"""The demo bookings (demo/bookings.py): nothing without a cluster, idempotent, and within the partition's GPUs."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from demo import bookings as demo
from lending import services
from lending.models import Reservation
from portal.models import Membership, Subteam
from scheduler.models import Cluster
from tests.lending.conftest import make_cluster
from tests.personas import Team


@pytest.fixture
def lab(db: None) -> Cluster:
    return make_cluster()


def test_demo_needs_a_cluster(team: Team) -> None:
    assert demo.load(timezone.localdate()) == 0
    assert not Reservation.objects.exists()


def test_demo_bookings_are_idempotent_and_never_overbook(team: Team, lab: Cluster) -> None:
    for spec in demo.bookings():
        subteam, made = Subteam.objects.get_or_create(slug=spec.subteam, defaults={"name": spec.subteam})
        if made:
            Membership.objects.create(member=team.member("member"), subteam=subteam, role="lead")
    today = timezone.localdate()
    assert demo.load(today) == len(demo.bookings())
    assert demo.load(today) == 0
    states = set(Reservation.objects.values_list("state", flat=True))
    assert states == {"approved", "requested", "rejected", "finished"}
    start = timezone.make_aware(dt.datetime.combine(today - dt.timedelta(days=4), dt.time()))
    slots = services.availability(lab, start, start + dt.timedelta(days=12))
    assert max(s.booked_gpus for s in slots) <= slots[0].total_gpus
    assert Reservation.objects.filter(sync_state="create").count() == 3


def test_demo_uses_the_first_active_cluster(team: Team) -> None:
    Subteam.objects.create(slug="moe", name="MoE")
    Membership.objects.create(
        member=team.member("lead"), subteam=Subteam.objects.get(slug="moe"), role="lead"
    )
    make_cluster("first")
    assert demo.load(timezone.localdate()) == 1
    assert Reservation.objects.get().cluster.name == "first"
