"""A booking Slurm does not enforce: the pages and the API show it with Slurm's reason and the
attempts, and the Slack outbox tells the subteam's channel, naming the requester (and again when it
is enforced)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from lending import services
from lending.models import Reservation
from slackbot import outbox
from slackbot.models import Notification
from tests.personas import Team

REASON = "update: Requested reservation overlaps with another reservation; create: Requested nodes are busy"


def not_enforced(team: Team, book: Any) -> Reservation:
    """What lending.sync leaves after a refused move: the flag, the reason, the attempts, its event."""
    r = book("member", nodes=["node2"])
    services.approve(team.member("admin"), r)
    now = timezone.now()
    Reservation.objects.filter(pk=r.pk).update(
        sync_error=REASON, sync_attempts=3, sync_retry_at=now + dt.timedelta(minutes=8), sync_state="create"
    )
    r.refresh_from_db()
    assert services.mark_not_enforced(r, REASON, attempts=3, retry_at=now, now=now)
    assert not services.mark_not_enforced(r, REASON, attempts=4, retry_at=now, now=now)  # once
    r.refresh_from_db()
    return r


def test_the_booking_page_says_it_is_not_enforced_and_why(team: Team, book: Any) -> None:
    r = not_enforced(team, book)
    page = team.client("member").get(r.get_absolute_url()).content.decode()
    assert 'id="not-enforced"' in page and "Not enforced by Slurm since" in page
    assert "Requested reservation overlaps with another reservation" in page
    assert "3 failed attempts in a row; the next one at" in page
    listed = team.client("member").get(reverse("lending:list")).content.decode()
    assert "not enforced" in listed


def test_the_calendar_marks_the_bar_with_the_reason(team: Team, book: Any) -> None:
    r = not_enforced(team, book)
    page = team.client("other").get(reverse("lending:calendar")).content.decode()
    assert f'class="gcal-bar resv-{r.state} not-enforced"' in page
    assert "Not enforced by Slurm: update: Requested reservation overlaps" in page


def test_the_api_gives_the_flag_the_attempts_and_the_next_try(team: Team, book: Any) -> None:
    r = not_enforced(team, book)
    data = team.client("member").get(f"/api/v1/reservations/{r.pk}/").json()
    assert data["not_enforced_since"] and data["sync_attempts"] == 3 and data["sync_retry_at"]
    assert data["sync_error"] == REASON
    assert [e["kind"] for e in data["events"]][-1] == "not_enforced"


@pytest.fixture
def english(settings: Any) -> Any:
    settings.LANGUAGE_CODE = "en"
    settings.PORTAL_BASE_URL = "https://portal.example.org"
    return settings


def test_slack_tells_the_subteam_and_the_requester_then_that_it_is_enforced_again(
    team: Team, book: Any, english: Any
) -> None:
    requester = team.member("member")
    requester.slack_user_id = "U0MEMBER"
    requester.save(update_fields=["slack_user_id"])
    r = not_enforced(team, book)
    assert outbox.collect() == 2  # "approved", then "not_enforced"
    event = r.events.get(kind="not_enforced")
    message = Notification.objects.get(event_key=f"reservation:{r.pk}:not_enforced:{event.pk}")
    assert message.channel == "#sft"
    assert message.text.startswith("GPU reservation NOT enforced by Slurm: Fine-tuning, node2 on lab, ")
    assert f"Slurm says: {REASON}" in message.text and "<@U0MEMBER>" in message.text
    assert message.text.endswith(f"\nhttps://portal.example.org/gpus/{r.pk}/")

    assert services.mark_enforced(r, "node2", announce=True)
    assert outbox.collect() == 1
    again = Notification.objects.get(event_key__startswith=f"reservation:{r.pk}:enforced:")
    assert again.text.startswith("GPU reservation enforced by Slurm again: Fine-tuning, node2 on lab, ")
    r.refresh_from_db()
    assert not r.is_not_enforced


def test_the_admins_are_told_too_and_a_second_episode_is_told_again(
    team: Team, book: Any, english: Any
) -> None:
    team.management.slack_channel = "#management"
    team.management.save(update_fields=["slack_channel"])
    r = not_enforced(team, book)
    outbox.collect()
    assert set(
        Notification.objects.filter(text__startswith="GPU reservation NOT").values_list("channel", flat=True)
    ) == {
        "#sft",
        "#management",
    }
    assert services.mark_enforced(r, "node2", announce=True)
    r.refresh_from_db()
    now = timezone.now()
    assert services.mark_not_enforced(r, REASON, attempts=1, retry_at=now, now=now)
    outbox.collect()
    # The booking lost its enforcement twice: told twice, to both channels.
    assert Notification.objects.filter(text__startswith="GPU reservation NOT", channel="#sft").count() == 2
    assert (
        Notification.objects.filter(text__startswith="GPU reservation NOT", channel="#management").count()
        == 2
    )
