"""Local sign-in providers, on 127.0.0.1 for the whole session (never the network):

- a Slack-like OpenID Connect provider (`oidc-provider-mock`): its ID tokens carry whatever claims a test
  puts on the user, `https://slack.com/user_id` and `https://slack.com/team_id` included;
- a GitHub-like OAuth server (tests/auth/github_server.py) with the `/user` API.

`slack_signin` / `github_signin` configure the portal for them, the way the environment does in
production (`config.signin.social_providers`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.http import HttpResponse
from django.test import Client

from config.signin import redirect_origins, social_providers
from tests.auth.github_server import FakeGitHub

TEAM_ID = "T0TANUKI"
SLACK_CLIENT = ("portal-test-slack", "slack-client-secret-do-not-log")
GITHUB_CLIENT = ("portal-test-github", "github-client-secret-do-not-log")


class SlackProvider:
    """The Slack-like provider: `user(...)` sets the claims of a Slack user, `sign_in(...)` walks the
    Django test client through the whole round trip (the provider's consent form posted with requests)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def user(self, user_id: str, team_id: str = TEAM_ID, name: str = "") -> str:
        claims = {"https://slack.com/user_id": user_id, "https://slack.com/team_id": team_id, "name": name}
        requests.put(f"{self.url}/users/{user_id}", json=claims, timeout=10).raise_for_status()
        return user_id

    def sign_in(self, client: Client, sub: str, next_url: str = "") -> HttpResponse:
        start = client.post("/accounts/oidc/slack/login/", {"next": next_url} if next_url else {})
        assert start.status_code == 302, start
        assert start["Location"].startswith(f"{self.url}/oauth2/authorize?"), start["Location"]
        back = requests.post(start["Location"], data={"sub": sub}, allow_redirects=False, timeout=10)
        assert back.status_code == 302, back.text
        callback = urlsplit(back.headers["Location"])
        return client.get(f"{callback.path}?{callback.query}")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def slack_provider() -> Iterator[SlackProvider]:
    import oidc_provider_mock
    import werkzeug.serving

    server = werkzeug.serving.make_server("127.0.0.1", 0, oidc_provider_mock.app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield SlackProvider(f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def github_server() -> Iterator[FakeGitHub]:
    with FakeGitHub(*GITHUB_CLIENT) as github:
        yield github


def _configure(settings: Any, providers: dict[str, dict[str, Any]]) -> None:
    settings.SOCIALACCOUNT_PROVIDERS = providers
    settings.SLACK_TEAM_ID = TEAM_ID
    policy = {**settings.CONTENT_SECURITY_POLICY}
    directives = {**policy["DIRECTIVES"], "form-action": ["'self'", *redirect_origins(providers)]}
    settings.CONTENT_SECURITY_POLICY = {**policy, "DIRECTIVES": directives}


@pytest.fixture
def slack_signin(settings: Any, slack_provider: SlackProvider) -> SlackProvider:
    """The portal signs in with the local Slack-like provider, for the workspace TEAM_ID."""
    client_id, secret = SLACK_CLIENT
    _configure(
        settings,
        social_providers(
            slack_client_id=client_id,
            slack_client_secret=secret,
            slack_team_id=TEAM_ID,
            slack_issuer=slack_provider.url,
        ),
    )
    return slack_provider


@pytest.fixture
def github_signin(settings: Any, github_server: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> FakeGitHub:
    """The portal signs in with the local GitHub. allauth reads GITHUB_URL once, when its GitHub views
    are imported, so the adapter's URLs are pointed at the local server the way GITHUB_URL would."""
    from allauth.socialaccount.providers.github.views import GitHubOAuth2Adapter

    client_id, secret = GITHUB_CLIENT
    _configure(
        settings,
        social_providers(
            github_client_id=client_id, github_client_secret=secret, github_url=github_server.url
        ),
    )
    for name, path in (
        ("authorize_url", "/login/oauth/authorize"),
        ("access_token_url", "/login/oauth/access_token"),
        ("profile_url", "/api/v3/user"),
        ("emails_url", "/api/v3/user/emails"),
    ):
        monkeypatch.setattr(GitHubOAuth2Adapter, name, github_server.url + path)
    return github_server


def github_round_trip(client: Client, github: FakeGitHub, login: str, next_url: str = "") -> HttpResponse:
    """The test client through GitHub's web flow, signed in at the local GitHub as `login`."""
    github.sign_in_as(login)
    start = client.post("/accounts/github/login/", {"next": next_url} if next_url else {})
    assert start.status_code == 302, start
    assert start["Location"].startswith(f"{github.url}/login/oauth/authorize?"), start["Location"]
    back = requests.get(start["Location"], allow_redirects=False, timeout=10)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")  # type: ignore[return-value]
