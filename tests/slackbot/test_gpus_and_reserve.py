"""`gpus` and `reserve`: acknowledged at once, answered later through the response_url (a thread), on
the lending list's services."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.utils import timezone

from lending import services as lending
from lending.models import Reservation
from portal.models import Membership
from slackbot import outbox
from slackbot.models import Notification
from tests.personas import Team
from tests.slackbot.conftest import Slash
from tests.slackbot.fakeslack import FakeSlack
from tests.slackbot.helpers import make_cluster

pytestmark = pytest.mark.django_db(transaction=True)  # the delayed answer reads the rows from its own thread

TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")


def later(fake: FakeSlack) -> str:
    """The text posted to the response_url (the thread posts once; the wait is on that event)."""
    assert fake.response_arrived.wait(timeout=30), "no delayed answer arrived"
    fake.response_arrived.clear()
    response = fake.responses.pop(0)
    assert response["response_type"] == "ephemeral"
    return str(response["text"])


def tomorrow(hour: int) -> dt.datetime:
    day = timezone.now().astimezone(TOKYO).date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=TOKYO)


# --- gpus ---------------------------------------------------------------------------------------------------


def test_gpus_answers_later_with_free_gpus_per_cluster(
    linked: Team, slash: Slash, fake_slack: FakeSlack
) -> None:
    cluster = make_cluster("devcluster")
    make_cluster("second", nodes=1)
    now = timezone.now()
    Reservation.objects.create(
        requester=linked.member("lead"),
        subteam=linked.sft,
        cluster=cluster,
        gpus=16,
        start=now - dt.timedelta(minutes=5),
        end=now + dt.timedelta(minutes=30),
        purpose="sweep",
        state=Reservation.State.APPROVED,
    )
    assert slash("gpus", locale="en-US") == "Counting free GPUs…"
    text = later(fake_slack)
    assert "devcluster: 16 of 32 free now, at least 16 free until midnight" in text
    assert "second: 8 of 8 free now, at least 8 free until midnight" in text


def test_gpus_takes_no_arguments(linked: Team, slash: Slash, fake_slack: FakeSlack) -> None:
    assert slash("gpus now", locale="en-US") == "Usage: `gpus`"
    assert not fake_slack.response_arrived.is_set()


# --- reserve ------------------------------------------------------------------------------------------------


def test_reserve_requests_a_booking(linked: Team, slash: Slash, fake_slack: FakeSlack) -> None:
    cluster = make_cluster()
    # Answered in the request itself: the booking is written before the reply, never by a thread.
    text = slash("reserve 8 h100 tomorrow 9:00 18:00 SFT sweep, 3 seeds", locale="en-US")
    assert not fake_slack.response_arrived.is_set()
    reservation = Reservation.objects.get()
    assert (reservation.requester, reservation.subteam, reservation.cluster) == (
        linked.member("member"),
        linked.sft,
        cluster,
    )
    assert (reservation.gpus, reservation.gpu_type, reservation.purpose) == (8, "h100", "SFT sweep, 3 seeds")
    assert (reservation.start, reservation.end) == (tomorrow(9), tomorrow(18))
    assert reservation.state == Reservation.State.REQUESTED
    assert text.startswith("Requested 8 GPUs on devcluster, ")
    assert f"https://portal.example.org{reservation.get_absolute_url()}" in text


def test_reserve_with_subteam_cluster_and_any_type(linked: Team, slash: Slash, fake_slack: FakeSlack) -> None:
    make_cluster("devcluster")
    second = make_cluster("second")
    Membership.objects.create(member=linked.member("member"), subteam=linked.pretrain)
    slash(
        f"reserve pretrain 16 any@second {tomorrow(10):%Y-%m-%dT%H:%M} {tomorrow(12):%Y-%m-%dT%H:%M} tokenize",
        locale="en-US",
    )
    reservation = Reservation.objects.get()
    assert (reservation.subteam, reservation.cluster, reservation.gpu_type) == (linked.pretrain, second, "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("reserve", "Give the number of GPUs first"),
        ("reserve 8", "Give the number of GPUs first"),
        ("reserve 0 h100 tomorrow 9:00 18:00 x", "Give the number of GPUs first"),
        ("reserve 8 h100 someday 9:00 x", "Could not read the start time `someday`"),
        ("reserve 8 h100 tomorrow 9:00 later x", "Could not read the end time `later`"),
        ("reserve 8 h100 tomorrow 9:00", "Could not read the end time –"),
        ("reserve 8 h100 tomorrow 9:00 18:00", "Say what the GPUs are for"),
        ("reserve 8 h100 tomorrow 18:00 tomorrow 9:00 x", "The end must be after the start."),
        ("reserve 8 h100@nowhere tomorrow 9:00 18:00 x", "No active cluster named nowhere."),
        ("reserve nosuchteam 8 h100 tomorrow 9:00 18:00 x", "Give the number of GPUs first"),
    ],
)
def test_reserve_refuses_bad_arguments_at_once(
    linked: Team, slash: Slash, fake_slack: FakeSlack, text: str, message: str
) -> None:
    make_cluster()
    assert message in slash(text, locale="en-US")
    assert not Reservation.objects.exists()
    assert not fake_slack.response_arrived.is_set()


def test_reserve_asks_for_the_cluster_when_there_are_several(linked: Team, slash: Slash) -> None:
    make_cluster("devcluster")
    make_cluster("second")
    text = slash("reserve 8 h100 tomorrow 9:00 18:00 x", locale="en-US")
    assert "e.g. `h100@devcluster` (clusters: devcluster, second)" in text
    assert not Reservation.objects.exists()


def test_reserve_refuses_another_subteam(linked: Team, slash: Slash, fake_slack: FakeSlack) -> None:
    make_cluster()
    text = slash("reserve sft 8 h100 tomorrow 9:00 18:00 x", user_id="U0OTHER", locale="en-US")
    assert text == "You may not reserve GPUs for Fine-tuning."
    assert not Reservation.objects.exists()
    assert not fake_slack.response_arrived.is_set()


def test_reserve_passes_on_the_lending_lists_refusal(
    linked: Team, slash: Slash, fake_slack: FakeSlack
) -> None:
    make_cluster()
    text = slash("reserve 64 h100 tomorrow 9:00 18:00 too big", locale="en-US")
    assert text.startswith("The reservation was not requested: gpus: The cluster has only 32 GPUs")
    assert not Reservation.objects.exists()


# --- reservation notifications --------------------------------------------------------------------------------


def test_an_approved_reservation_is_announced_in_the_subteams_channel(linked: Team, settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"
    settings.PORTAL_BASE_URL = "https://portal.example.org"
    cluster = make_cluster()
    reservation = lending.request_reservation(
        linked.member("member"),
        subteam=linked.sft,
        cluster=cluster,
        start=tomorrow(9),
        end=tomorrow(18),
        purpose="SFT sweep",
        gpus=8,
        gpu_type="h100",
    )
    outbox.collect()
    assert not Notification.objects.exists()  # a request is not announced; its decision is
    lending.approve(linked.member("admin"), reservation)
    outbox.collect()
    notification = Notification.objects.get()
    assert notification.channel == "#sft"
    assert notification.event_key == f"reservation:{reservation.pk}:approved"
    assert notification.text.startswith(
        f"GPU reservation approved: Fine-tuning, 8 h100 GPU on devcluster, {tomorrow(9):%m-%d} 09:00–18:00 (SFT sweep)\n"
    )
    assert f"https://portal.example.org{reservation.get_absolute_url()}" in notification.text
    assert notification.sent_at is None  # delivery is the outbox's job


def test_a_rejected_reservation_is_announced(linked: Team) -> None:
    cluster = make_cluster()
    reservation = lending.request_reservation(
        linked.member("member"),
        subteam=linked.sft,
        cluster=cluster,
        start=tomorrow(9),
        end=tomorrow(18),
        purpose="SFT sweep",
        gpus=8,
    )
    lending.reject(linked.member("admin"), reservation, "The pretraining run needs the nodes.")
    outbox.collect()
    assert list(Notification.objects.values_list("event_key", flat=True)) == [
        f"reservation:{reservation.pk}:rejected"
    ]


def test_starting_and_idle_are_announced_and_idle_at_most_hourly(linked: Team, settings: Any) -> None:
    from lending.models import ReservationEvent

    settings.LANGUAGE_CODE = "en"
    cluster = make_cluster()
    reservation = lending.request_reservation(
        linked.member("member"),
        subteam=linked.sft,
        cluster=cluster,
        start=tomorrow(9),
        end=tomorrow(18),
        purpose="SFT sweep",
        gpus=8,
    )
    for event in ("starting", "idle", "idle", "finished", "cancelled"):
        ReservationEvent.objects.create(reservation=reservation, kind=event)
    outbox.collect()
    texts = list(Notification.objects.order_by("pk").values_list("text", flat=True))
    assert [t.split(":")[0] for t in texts] == ["GPU reservation starting", "Reserved GPUs are idle"]
