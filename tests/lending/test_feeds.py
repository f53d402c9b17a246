"""Calendar feed links: a random token per member and per subteam, stored as its SHA-256, shown once
when made; a reset ends the old link at once. Members reset their own, leads their subteam's."""

from __future__ import annotations

import hashlib
import re

import icalendar
from django.core import signing
from django.test import Client
from django.urls import reverse

from lending.models import CalendarFeed
from tests.personas import Team

FEED_URL = re.compile(r'data-testid="new-feed-url">(http://testserver(/api/v1/calendars/[^<]+\.ics))<')


def _reset(client: Client, kind: str, key: str, page: str) -> str:
    """Press "Reset link" on `page`; the path of the link it shows, once."""
    response = client.post(reverse("lending:feed-reset", args=[kind, key]), {"next": page})
    assert response.status_code == 302 and response["Location"] == f"{page}#feeds"
    body = client.get(page).content.decode()
    found = FEED_URL.search(body)
    assert found, body
    assert not FEED_URL.search(client.get(page).content.decode())  # shown only once
    return found.group(2)


def _events(path: str) -> list[str]:
    response = Client().get(path)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/calendar")
    return [str(e["summary"]) for e in icalendar.Calendar.from_ical(response.content).walk("VEVENT")]


def test_a_member_makes_and_resets_their_link_on_their_own_page(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    book("member", purpose="mt-bench")
    book("lead", purpose="leads-run")
    client = team.client("member")
    page = team.member("member").get_absolute_url()
    first = _reset(client, "member", "member", page)
    assert _events(first) == ["8 GPU · Fine-tuning: mt-bench"]
    second = _reset(client, "member", "member", page)
    assert second != first
    assert Client().get(first).status_code == 404
    assert _events(second) == ["8 GPU · Fine-tuning: mt-bench"]


def test_only_the_tokens_hash_is_stored(team: Team) -> None:
    path = _reset(team.client("member"), "member", "member", reverse("lending:list"))
    token = path.rsplit("/", 1)[1].removesuffix(".ics")
    feed = CalendarFeed.objects.get(member=team.member("member"))
    assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert feed.created_by == team.member("member")


def test_another_member_cannot_reset_mine(team: Team) -> None:
    path = _reset(team.client("member"), "member", "member", reverse("lending:list"))
    url = reverse("lending:feed-reset", args=["member", "member"])
    for role in ("other", "lead"):
        assert team.client(role).post(url).status_code == 403
    assert team.client("anon").post(url).status_code == 302  # to the sign-in page
    assert Client().get(path).status_code == 200  # still the same link


def test_a_subteams_link_is_reset_by_its_leads(team: Team, book) -> None:  # type: ignore[no-untyped-def]
    book("member", purpose="mt-bench")
    book("other", purpose="tokenizer")
    url = reverse("lending:feed-reset", args=["subteam", "sft"])
    assert team.client("member").post(url).status_code == 403
    assert team.client("other").post(url).status_code == 403
    old = _reset(team.client("lead"), "subteam", "sft", reverse("lending:list"))
    assert _events(old) == ["8 GPU · Fine-tuning: mt-bench"]
    new = _reset(team.client("admin"), "subteam", "sft", reverse("lending:list"))
    assert Client().get(old).status_code == 404 and _events(new) == ["8 GPU · Fine-tuning: mt-bench"]


def test_a_token_opens_only_its_own_feed(team: Team) -> None:
    path = _reset(team.client("member"), "member", "member", reverse("lending:list"))
    token = path.rsplit("/", 1)[1].removesuffix(".ics")
    anon = Client()
    for kind, key, tok in (
        ("member", "other", token),
        ("subteam", "sft", token),
        ("member", "member", "forged"),
        ("calendar", "member", token),
    ):
        assert anon.get(reverse("lending-ics", args=[kind, key, tok])).status_code == 404


def test_the_old_derived_links_no_longer_work(team: Team) -> None:
    """Before per-feed tokens, a link's token was a signature of its name made with SECRET_KEY."""
    old = signing.Signer(salt="lending.ics").signature("member:member")
    _reset(team.client("member"), "member", "member", reverse("lending:list"))
    assert Client().get(reverse("lending-ics", args=["member", "member", old])).status_code == 404


def test_the_panel_shows_only_on_the_members_own_page(team: Team) -> None:
    page = team.member("member").get_absolute_url()
    mine = team.client("member").get(page).content.decode()
    assert 'id="feeds"' in mine and 'data-feed="member:member"' in mine and 'data-feed="subteam:sft"' in mine
    assert 'id="feeds"' not in team.client("lead").get(page).content.decode()
    # A plain member cannot make the subteam's link; its lead can.
    assert reverse("lending:feed-reset", args=["subteam", "sft"]) not in mine
    lead_page = team.client("lead").get(team.member("lead").get_absolute_url()).content.decode()
    assert reverse("lending:feed-reset", args=["subteam", "sft"]) in lead_page


def test_the_reset_goes_back_only_to_this_site(team: Team) -> None:
    url = reverse("lending:feed-reset", args=["member", "member"])
    response = team.client("member").post(url, {"next": "https://evil.example/"})
    assert response["Location"] == reverse("lending:list") + "#feeds"
