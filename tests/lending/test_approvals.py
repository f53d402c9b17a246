"""Admins see how many bookings await them (nav and list) and decide on several from the list, each
through `services.approve` / `services.reject` with their checks; anyone else is refused (403) with
nothing changed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lending import access
from lending.models import Reservation
from scheduler.models import Cluster
from tests.personas import ROLES, Team


def decide(
    team: Team, role: str, bookings: list[Reservation], action: str, note: str = "", **extra: str
) -> Any:
    data = {"booking": [str(r.pk) for r in bookings], "action": action, "note": note, **extra}
    return team.client(role).post(reverse("lending:decide_many"), data, follow=True)


def states(*bookings: Reservation) -> list[str]:
    for r in bookings:
        r.refresh_from_db()
    return [r.state for r in bookings]


def test_admins_see_how_many_bookings_await_them_in_the_nav_and_the_list(
    team: Team, lab: Cluster, book: Any
) -> None:
    for hours in ((1, 2), (3, 4), (5, 6)):
        book("member", hours=hours)
    Reservation.objects.create(  # a request whose window has passed: nothing to decide any more
        requester=team.member("member"), subteam=team.sft, cluster=lab, gpus=8, purpose="old",
        start=timezone.now() - dt.timedelta(hours=5), end=timezone.now() - dt.timedelta(hours=4),
    )  # fmt: skip
    awaiting = f"{reverse('lending:list')}?state=awaiting"
    overview = team.client("admin").get(reverse("overview")).content.decode()
    nav = overview[overview.index('id="nav-awaiting"') :]
    assert f'href="{awaiting}">3 awaiting approval</a>' in nav
    page = team.client("admin").get(reverse("lending:list")).content.decode()
    assert f'id="awaiting" href="{awaiting}">3 awaiting approval</a>' in page
    listed = team.client("admin").get(awaiting).content.decode()
    assert listed.count('name="booking"') == 3 and ">old<" not in listed
    ja = team.client("admin", "ja").get(reverse("lending:list")).content.decode()
    assert "awaiting approval" not in ja and "3 件" in ja
    nothing = team.client("admin").get(reverse("lending:list"), {"state": "approved"}).content.decode()
    assert "decide-many" not in nothing and 'id="nav-awaiting"' in nothing  # no request listed: no form
    for role in ("lead", "member", "other"):
        body = team.client(role).get(reverse("lending:list")).content.decode()
        assert "awaiting approval" not in body and 'name="booking"' not in body and "decide-many" not in body


def test_an_admin_approves_several_from_the_list_each_with_its_checks(
    team: Team, lab: Cluster, book: Any
) -> None:
    first = book("member", gpus=16, hours=(1, 3), purpose="first")
    second = book("lead", gpus=16, hours=(2, 4), purpose="second")
    third = book("other", gpus=8, hours=(2, 3), purpose="third")  # no room once the others are approved
    response = decide(team, "admin", [third, second, first], "approve", query="state=awaiting")
    assert response.redirect_chain[-1][0] == f"{reverse('lending:list')}?state=awaiting"
    assert states(first, second, third) == ["approved", "approved", "requested"]
    assert first.approver == team.member("admin")
    body = response.content.decode()
    assert "Approved 2 bookings." in body
    assert "Not decided: 8 GPU, &#x27;third&#x27; (Pretraining data):" in body and "only 0 GPUs free" in body


def test_rejecting_several_needs_a_reason(team: Team, book: Any) -> None:
    one, two = book("member", hours=(1, 2)), book("other", hours=(3, 4))
    body = decide(team, "admin", [one, two], "reject", note=" ").content.decode()
    assert "Say why the booking is rejected." in body
    assert states(one, two) == ["requested", "requested"]
    body = decide(team, "admin", [one, two], "reject", note="the final push needs them").content.decode()
    assert "Rejected 2 bookings." in body
    assert states(one, two) == ["rejected", "rejected"]
    assert one.decision_note == "the final push needs them"
    again = decide(team, "admin", [one], "approve").content.decode()  # decided already: told, unchanged
    assert "Only a requested booking can be approved" in again and states(one) == ["rejected"]


@pytest.mark.parametrize("role", ["lead", "member", "other", "anon"])
@pytest.mark.parametrize("action", ["approve", "reject"])
def test_only_admins_decide_from_the_list(team: Team, book: Any, role: str, action: str) -> None:
    r = book("member")
    response = team.client(role).post(
        reverse("lending:decide_many"), {"booking": [r.pk], "action": action, "note": "no"}
    )
    assert response.status_code == (302 if role == "anon" else 403)
    if role == "anon":
        assert response["Location"].startswith(reverse("login"))
    r.refresh_from_db()
    assert (r.state, r.approver, r.decision_note) == ("requested", None, "")
    assert list(r.events.values_list("kind", flat=True)) == ["requested"]


@pytest.mark.parametrize("role", ROLES)
def test_the_access_helper_refuses_all_but_admins(team: Team, book: Any, role: str) -> None:
    from django.contrib.auth.models import AnonymousUser
    from django.core.exceptions import PermissionDenied

    r = book("member")
    user = AnonymousUser() if role == "anon" else team.users[role]
    if role == "admin":
        assert access.get_reservations_to_decide(user, [r.pk, 999]) == [r]
    else:
        with pytest.raises(PermissionDenied):
            access.get_reservations_to_decide(user, [r.pk])


def _count(client: Any, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_the_admins_list_and_nav_queries_do_not_grow_with_rows(team: Team, book: Any) -> None:
    book("member", hours=(1, 2))
    admin = team.client("admin")
    urls = [reverse("lending:list"), f"{reverse('lending:list')}?state=awaiting", reverse("overview")]
    one = [_count(admin, url) for url in urls]
    for i in range(8):
        book("lead" if i % 2 else "member", hours=(3 + 2 * i, 4 + 2 * i))
    assert [_count(admin, url) for url in urls] == one
