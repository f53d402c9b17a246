"""Only requests Slack signed, once, within five minutes, are answered."""

from __future__ import annotations

import time
from typing import Any

import pytest

from portal.models import Task
from slackbot.models import SeenRequest
from tests.personas import Team
from tests.slackbot.conftest import form, post, signed_headers

pytestmark = pytest.mark.django_db


def test_it_answers_a_signed_request(linked: Team, slack_settings: Any) -> None:
    body = form("task Write the eval plan")
    response = post(body, signed_headers(body))
    assert response.status_code == 200
    assert Task.objects.filter(title="Write the eval plan", subteam=linked.sft).count() == 1


def test_it_refuses_a_request_signed_with_another_secret(linked: Team, slack_settings: Any) -> None:
    body = form("task Forged")
    response = post(body, signed_headers(body, secret="not-the-secret"))
    assert response.status_code == 401
    assert not Task.objects.exists()


def test_it_refuses_a_body_changed_after_signing(linked: Team, slack_settings: Any) -> None:
    headers = signed_headers(form("task Harmless"))
    response = post(form("task Tampered"), headers)
    assert response.status_code == 401
    assert not Task.objects.exists()


def test_it_refuses_a_replayed_request(linked: Team, slack_settings: Any) -> None:
    body = form("task Only once")
    headers = signed_headers(body)
    assert post(body, headers).status_code == 200
    assert post(body, headers).status_code == 401
    assert Task.objects.filter(title="Only once").count() == 1


def test_it_refuses_an_expired_request(linked: Team, slack_settings: Any) -> None:
    body = form("task Too late")
    response = post(body, signed_headers(body, timestamp=int(time.time()) - 6 * 60))
    assert response.status_code == 401
    assert not Task.objects.exists()
    assert not SeenRequest.objects.exists()


def test_it_refuses_a_request_from_the_future(linked: Team, slack_settings: Any) -> None:
    body = form("task Too early")
    response = post(body, signed_headers(body, timestamp=int(time.time()) + 6 * 60))
    assert response.status_code == 401
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Slack-Request-Timestamp": "1700000000"},
        {"X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠", "X-Slack-Signature": "v0=00"},
    ],
)
def test_it_refuses_unsigned_or_malformed_requests(
    linked: Team, slack_settings: Any, headers: dict[str, str]
) -> None:
    response = post(form("task Unsigned"), headers)
    assert response.status_code == 401
    assert not Task.objects.exists()


def test_without_a_signing_secret_it_refuses_everything(
    linked: Team, slack_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    body = form("task Unconfigured")
    headers = signed_headers(body)
    slack_settings.SLACK_SIGNING_SECRET = ""
    response = post(body, headers)
    assert response.status_code == 503
    assert not Task.objects.exists()
    assert "SLACK_SIGNING_SECRET is not set" in caplog.text


def test_it_answers_only_post(linked: Team, slack_settings: Any) -> None:
    from django.test import Client

    assert Client().get("/slack/commands/").status_code == 405


def test_old_signatures_are_forgotten(linked: Team, slack_settings: Any) -> None:
    import datetime as dt

    from django.utils import timezone

    SeenRequest.objects.create(signature="v0=old", seen_at=timezone.now() - dt.timedelta(minutes=11))
    body = form("help")
    headers = signed_headers(body)
    assert post(body, headers).status_code == 200
    assert list(SeenRequest.objects.values_list("signature", flat=True)) == [headers["X-Slack-Signature"]]


def test_slacks_certificate_check_gets_an_empty_answer(linked: Team, slack_settings: Any) -> None:
    body = b"ssl_check=1&token=legacy-verification-token"
    response = post(body, signed_headers(body))
    assert response.status_code == 200 and response.content == b""
