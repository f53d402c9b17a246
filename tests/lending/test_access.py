"""Who may book, decide on and change bookings (`lending.access`), for every persona.

The services assume these were asked; the pages and the API ask them (their refusals are in
test_web.py and test_api.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from lending import access
from tests.personas import ROLES, Team


def user_of(team: Team, role: str):  # type: ignore[no-untyped-def]
    return AnonymousUser() if role == "anon" else team.users[role]


@pytest.mark.parametrize(
    ("role", "book_sft", "book_pretrain", "offer_form", "decide"),
    [
        ("admin", True, True, True, True),
        ("lead", True, False, True, False),
        ("member", True, False, True, False),
        ("other", False, True, True, False),
        ("anon", False, False, False, False),
    ],
)
def test_booking_and_deciding_by_role(
    team: Team, role: str, book_sft: bool, book_pretrain: bool, offer_form: bool, decide: bool
) -> None:
    user = user_of(team, role)
    assert access.can_book_gpus(user, team.sft.pk) is book_sft
    assert access.can_book_gpus(user, team.pretrain.pk) is book_pretrain
    assert access.may_book_gpus(user) is offer_form
    assert access.can_decide_reservation(user) is decide


@pytest.mark.parametrize("role", ROLES)
def test_a_booking_is_changed_by_its_requester_the_subteams_leads_and_admins(team: Team, role: str) -> None:
    members_booking = (team.member("member").pk, team.sft.pk)
    assert access.can_change_reservation(user_of(team, role), *members_booking) is (
        role in ("admin", "lead", "member")
    )
    leads_booking = (team.member("lead").pk, team.sft.pk)
    assert access.can_change_reservation(user_of(team, role), *leads_booking) is (role in ("admin", "lead"))
