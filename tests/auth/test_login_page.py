"""The sign-in page: one button per configured provider (none: only the password form), the buttons
post (CSRF) to allauth, and PASSWORD_SIGNIN="admins" keeps passwords for the management team."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from config.signin import redirect_origins, social_providers
from tests.auth.conftest import GITHUB_CLIENT, SLACK_CLIENT, SlackProvider
from tests.auth.github_server import FakeGitHub
from tests.personas import PASSWORD, Team

ROOT = Path(__file__).resolve().parents[2]


def _page(client: Client | None = None) -> str:
    return (client or Client(headers={"accept-language": "en"})).get("/accounts/login/").content.decode()


def test_without_providers_only_the_password_form_shows(db: None, settings: Any) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = {}
    html = _page()
    assert 'name="password"' in html
    assert "Sign in with" not in html and "/accounts/oidc/" not in html and "/accounts/github/" not in html


def test_configured_providers_get_a_button_each(
    db: None, slack_signin: SlackProvider, settings: Any, github_server: FakeGitHub
) -> None:
    both = social_providers(
        slack_client_id=SLACK_CLIENT[0],
        slack_client_secret=SLACK_CLIENT[1],
        slack_team_id="T0TANUKI",
        slack_issuer=slack_signin.url,
        github_client_id=GITHUB_CLIENT[0],
        github_client_secret=GITHUB_CLIENT[1],
    )
    settings.SOCIALACCOUNT_PROVIDERS = both
    html = _page()
    assert "Sign in with Slack" in html and "Sign in with GitHub" in html
    assert 'action="/accounts/oidc/slack/login/"' in html and 'action="/accounts/github/login/"' in html
    assert SLACK_CLIENT[1] not in html and GITHUB_CLIENT[1] not in html
    assert 'name="password"' in html  # passwords stay (admins; everyone unless PASSWORD_SIGNIN=admins)
    assert redirect_origins(both) == sorted(["https://github.com", slack_signin.url])


def test_a_provider_round_trip_starts_only_with_a_post(db: None, slack_signin: SlackProvider) -> None:
    response = Client().get("/accounts/oidc/slack/login/")
    assert response.status_code == 200  # allauth's "continue?" page, no redirect on a GET
    csrf = Client(enforce_csrf_checks=True).post("/accounts/oidc/slack/login/")
    assert csrf.status_code == 403


def test_slack_needs_the_team_id() -> None:
    with pytest.raises(ImproperlyConfigured, match="SLACK_TEAM_ID"):
        social_providers(slack_client_id="a", slack_client_secret="b")


def test_providers_come_from_the_environment() -> None:
    """The settings module, in a fresh process, with the variables a deployment sets."""
    code = (
        "import json, config.settings as s;"
        "print(json.dumps([sorted(s.SOCIALACCOUNT_PROVIDERS), s.SLACK_TEAM_ID, "
        "s.CONTENT_SECURITY_POLICY['DIRECTIVES']['form-action']]))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "SECRET_KEY": "x",
        "SLACK_CLIENT_ID": "1.2",
        "SLACK_CLIENT_SECRET": "s",
        "SLACK_TEAM_ID": "T0TANUKI",
        "GITHUB_CLIENT_ID": "g",
        "GITHUB_CLIENT_SECRET": "h",
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == (
        '[["github", "openid_connect"], "T0TANUKI", ["\'self\'", "https://github.com", "https://slack.com"]]'
    )


def test_password_sign_in_works_for_everyone_by_default(team: Team) -> None:
    client = Client()
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert response.status_code == 302


def test_admins_only_refuses_a_members_password_with_a_reason(team: Team, settings: Any) -> None:
    settings.PASSWORD_SIGNIN = "admins"
    client = Client(headers={"accept-language": "en"})
    response = client.post("/accounts/login/", {"username": "member", "password": PASSWORD})
    assert response.status_code == 200
    assert "Password sign-in is for the management team" in response.content.decode()
    assert client.get("/").status_code == 302
    assert Client().post("/accounts/login/", {"username": "admin", "password": PASSWORD}).status_code == 302


def test_a_wrong_password_still_says_so(team: Team) -> None:
    client = Client(headers={"accept-language": "en"})
    response = client.post("/accounts/login/", {"username": "member", "password": "nope"})
    assert response.status_code == 200
    assert "Your username and password didn't match" in response.content.decode()
