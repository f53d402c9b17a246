"""portal.access: the primitives every app's rules are built on, and what they remember per request."""

from __future__ import annotations

import gc
import weakref

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from portal import access, services
from tests.personas import Team, make_user


def user_of(team: Team, role: str):  # type: ignore[no-untyped-def]
    return AnonymousUser() if role == "anon" else team.users[role]


@pytest.mark.parametrize(
    ("role", "act_sft", "lead_sft", "act_any", "lead_any"),
    [
        ("admin", True, True, True, True),
        ("lead", True, True, True, True),
        ("member", True, False, True, False),
        ("other", False, False, True, False),
        ("anon", False, False, False, False),
    ],
)
def test_the_primitives_by_role(
    team: Team, role: str, act_sft: bool, lead_sft: bool, act_any: bool, lead_any: bool
) -> None:
    user = user_of(team, role)
    assert access.may_act_in(user, team.sft.pk) is act_sft
    assert access.may_lead(user, team.sft.pk) is lead_sft
    assert access.may_act_in_any(user) is act_any
    assert access.may_lead_any(user) is lead_any
    assert access.may_act_in(user, None) is (role == "admin")  # the whole project is the admins'


def test_subteams_of_and_is_self(team: Team) -> None:
    member = team.users["member"]
    assert access.subteams_of(member) == {team.sft.pk}
    assert access.subteams_of(team.users["admin"]) == {team.management.pk}
    assert access.subteams_of(AnonymousUser()) == set()
    assert access.is_self(member, team.member("member").pk)
    assert not access.is_self(member, team.member("lead").pk)
    assert not access.is_self(member, None) and not access.is_self(AnonymousUser(), team.member("member").pk)


def test_a_user_object_is_looked_up_once(team: Team) -> None:
    user = User.objects.get(username="member")
    with CaptureQueriesContext(connection) as first:
        access.member_of(user), access.is_admin(user), access.subteams_of(user)
    with CaptureQueriesContext(connection) as again:
        access.member_of(user), access.is_admin(user), access.subteams_of(user), access.may_lead(user, 1)
    assert (len(first), len(again)) == (3, 0)


def test_a_fresh_user_object_sees_a_changed_membership(team: Team) -> None:
    """The facts belong to one object (one request), not to the account: equal users share nothing."""
    before = User.objects.get(username="other")
    assert not access.may_act_in(before, team.sft.pk)
    services.add_membership(None, team.member("other"), team.sft)
    after = User.objects.get(username="other")
    assert after == before  # model instances compare by primary key ...
    assert access.may_act_in(after, team.sft.pk)  # ... but each is looked up on its own
    assert not access.may_act_in(before, team.sft.pk)


def test_the_facts_go_with_the_user_object(team: Team) -> None:
    """Nothing keeps a user object alive, and nothing outlives it."""
    loner = make_user("loner")
    access.member_of(loner)
    alive = weakref.ref(loner)
    del loner
    gc.collect()
    assert alive() is None
    assert all(ref() is not None for ref, _facts in access._facts._entries.values())
