"""Sign in with Slack (OpenID Connect) against a local provider: the ID token's user-id claim picks the
member, and only in the team's workspace."""

from __future__ import annotations

import logging

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.test import Client

from portal.models import Member
from tests.auth.conftest import SLACK_CLIENT, SlackProvider
from tests.personas import Team

User = get_user_model()


def _slack_id(team: Team, role: str, user_id: str) -> None:
    Member.objects.filter(pk=team.member(role).pk).update(slack_user_id=user_id)


def _signed_in_as(client: Client) -> str | None:
    response = client.get("/", headers={"accept-language": "en"})
    if response.status_code != 200:
        return None
    return str(response.wsgi_request.user.get_username())


def test_a_known_member_signs_in_with_slack(team: Team, slack_signin: SlackProvider) -> None:
    _slack_id(team, "member", "U0MEMBER")
    response = slack_signin.sign_in(Client(), slack_signin.user("U0MEMBER"), next_url="/tasks/")
    assert response.status_code == 302 and response["Location"] == "/tasks/"
    assert _signed_in_as(response.client) == "member"  # type: ignore[attr-defined]
    account = SocialAccount.objects.get(provider="slack", uid="U0MEMBER")
    assert account.user == team.users["member"]


def test_the_second_sign_in_uses_the_same_account(team: Team, slack_signin: SlackProvider) -> None:
    _slack_id(team, "lead", "U0LEAD")
    user_id = slack_signin.user("U0LEAD")
    for _ in range(2):
        client = Client()
        assert slack_signin.sign_in(client, user_id).status_code == 302
        assert _signed_in_as(client) == "lead"
    assert SocialAccount.objects.filter(provider="slack").count() == 1


def test_an_unknown_slack_user_is_refused_and_no_account_is_made(
    team: Team, slack_signin: SlackProvider
) -> None:
    users_before = User.objects.count()
    client = Client(headers={"accept-language": "en"})
    response = slack_signin.sign_in(client, slack_signin.user("U0STRANGER"))
    assert response.status_code == 403
    body = response.content.decode()
    assert "Not a member yet" in body and "management team" in body and "U0STRANGER" in body
    assert User.objects.count() == users_before and not SocialAccount.objects.exists()
    assert _signed_in_as(client) is None


def test_another_workspace_is_refused_even_for_a_known_user_id(
    team: Team, slack_signin: SlackProvider
) -> None:
    _slack_id(team, "member", "U0MEMBER")
    client = Client(headers={"accept-language": "en"})
    response = slack_signin.sign_in(client, slack_signin.user("U0MEMBER", team_id="T0ELSEWHERE"))
    assert response.status_code == 403
    assert (
        "Another Slack workspace" in response.content.decode() and "T0ELSEWHERE" in response.content.decode()
    )
    assert not SocialAccount.objects.exists() and _signed_in_as(client) is None


def test_the_refusal_page_speaks_japanese(team: Team, slack_signin: SlackProvider) -> None:
    response = slack_signin.sign_in(Client(), slack_signin.user("U0NOBODY"))
    assert response.status_code == 403
    assert "運営チーム" in response.content.decode()


def test_a_member_whose_slack_id_was_removed_is_refused_next_time(
    team: Team, slack_signin: SlackProvider
) -> None:
    _slack_id(team, "other", "U0OTHER")
    user_id = slack_signin.user("U0OTHER")
    assert slack_signin.sign_in(Client(), user_id).status_code == 302
    _slack_id(team, "other", "")
    client = Client()
    assert slack_signin.sign_in(client, user_id).status_code == 403
    assert _signed_in_as(client) is None


def test_a_switched_off_account_is_refused(team: Team, slack_signin: SlackProvider) -> None:
    _slack_id(team, "member", "U0MEMBER")
    User.objects.filter(username="member").update(is_active=False)
    response = slack_signin.sign_in(Client(), slack_signin.user("U0MEMBER"))
    assert response.status_code == 403 and not SocialAccount.objects.exists()


def test_the_client_secret_is_neither_stored_nor_logged(
    team: Team, slack_signin: SlackProvider, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _slack_id(team, "member", "U0MEMBER")
    client = Client()
    assert slack_signin.sign_in(client, slack_signin.user("U0MEMBER")).status_code == 302
    slack_signin.sign_in(Client(), slack_signin.user("U0STRANGER"))
    secret = SLACK_CLIENT[1]
    assert secret not in caplog.text
    from allauth.socialaccount.models import SocialApp, SocialToken

    assert not SocialApp.objects.exists() and not SocialToken.objects.exists()
    account = SocialAccount.objects.get()
    assert secret not in str(account.extra_data)
