from __future__ import annotations

import time
import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from portal.models import Member
from slackbot.signing import sign
from tests.personas import Team
from tests.slackbot.fakeslack import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-test-token"


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    yield fake
    fake.stop()


@pytest.fixture
def slack_settings(settings: Any, fake_slack: FakeSlack) -> Any:
    settings.SLACK_SIGNING_SECRET = SECRET
    settings.SLACK_BOT_TOKEN = TOKEN
    settings.SLACK_API_BASE_URL = fake_slack.api_url
    settings.PORTAL_BASE_URL = "https://portal.example.org"
    return settings


def signed_headers(body: bytes, *, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sign(secret, stamp, body)}


def form(text: str, *, user_id: str = "U0MEMBER", response_url: str = "", **extra: str) -> bytes:
    fields = {
        "token": "legacy-verification-token",
        "team_id": "T0TANUKI",
        "channel_id": "C0SFT",
        "user_id": user_id,
        "user_name": "someone",
        "command": "/tanuki",
        "text": text,
        "response_url": response_url or "https://hooks.slack.com/commands/T0TANUKI/1/abc",
        "trigger_id": "1.2.3",
        **extra,
    }
    return urllib.parse.urlencode(fields).encode()


def post(body: bytes, headers: dict[str, str] | None = None) -> Any:
    client = Client()
    return client.post(
        "/slack/commands/",
        data=body,
        content_type="application/x-www-form-urlencoded",
        headers=headers or {},
    )


class Slash:
    """Send signed slash commands as a Slack user."""

    def __init__(self, fake: FakeSlack) -> None:
        self.fake = fake

    def __call__(self, text: str, *, user_id: str = "U0MEMBER", **extra: str) -> str:
        # Each command gets its own trigger_id, as from Slack: the same body in the same second would be
        # the same signature, which the replay guard refuses.
        extra.setdefault("trigger_id", uuid.uuid4().hex)
        body = form(text, user_id=user_id, response_url=self.fake.response_url(), **extra)
        response = post(body, signed_headers(body))
        assert response.status_code == 200, response.content
        data = response.json()
        assert data["response_type"] == "ephemeral"
        return str(data["text"])


@pytest.fixture
def slash(slack_settings: Any, fake_slack: FakeSlack) -> Slash:
    return Slash(fake_slack)


SLACK_IDS = {"admin": "U0ADMIN", "lead": "U0LEAD", "member": "U0MEMBER", "other": "U0OTHER"}


@pytest.fixture
def linked(team: Team) -> Team:
    """The personas, each with a Slack user ID on their profile."""
    for role, slack_id in SLACK_IDS.items():
        Member.objects.filter(pk=team.member(role).pk).update(slack_user_id=slack_id)
    return team
