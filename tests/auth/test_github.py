"""Sign in with GitHub against a local server speaking GitHub's OAuth flow and `/user` API: the login
picks the member (case-insensitive)."""

from __future__ import annotations

from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.test import Client

from portal.models import Member
from tests.auth.conftest import github_round_trip
from tests.auth.github_server import FakeGitHub
from tests.personas import Team

User = get_user_model()


def test_a_known_github_login_signs_in_whatever_its_case(team: Team, github_signin: FakeGitHub) -> None:
    Member.objects.filter(pk=team.member("lead").pk).update(github="Lead-Hacker")
    client = Client()
    response = github_round_trip(client, github_signin, "lead-HACKER", next_url="/goals/")
    assert response.status_code == 302 and response["Location"] == "/goals/"
    assert client.get("/").wsgi_request.user.get_username() == "lead"  # type: ignore[attr-defined]
    assert SocialAccount.objects.get(provider="github").user == team.users["lead"]


def test_an_unknown_github_login_is_refused(team: Team, github_signin: FakeGitHub) -> None:
    users_before = User.objects.count()
    client = Client(headers={"accept-language": "en"})
    response = github_round_trip(client, github_signin, "octocat")
    assert response.status_code == 403
    body = response.content.decode()
    assert "Not a member yet" in body and "octocat" in body
    assert User.objects.count() == users_before and not SocialAccount.objects.exists()
    assert client.get("/").status_code == 302  # still anonymous: back to the sign-in page


def test_a_login_on_two_members_is_refused(team: Team, github_signin: FakeGitHub) -> None:
    Member.objects.filter(pk__in=[team.member("member").pk, team.member("other").pk]).update(github="twin")
    response = github_round_trip(Client(), github_signin, "twin")
    assert response.status_code == 403 and not SocialAccount.objects.exists()
