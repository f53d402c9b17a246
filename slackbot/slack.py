"""The one module that talks to Slack: posting to channels (Web API) and to a command's response_url.

Errors come out as `SlackError`, with whether retrying can help and how long Slack asked us to wait.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from django.conf import settings
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger("slackbot")

TIMEOUT_SECONDS = 10

# Web API errors that no retry will fix: the message is kept and delivery stops.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "missing_scope",
        "invalid_blocks",
        "msg_too_long",
        "no_text",
    }
)


class SlackError(Exception):
    def __init__(self, message: str, *, permanent: bool = False, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


def client() -> WebClient:
    """A Web API client for the bot token; no automatic retries (the outbox schedules them)."""
    return WebClient(
        token=settings.SLACK_BOT_TOKEN,
        base_url=settings.SLACK_API_BASE_URL,
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[],
    )


def post_message(channel: str, text: str, blocks: list[dict[str, Any]] | None = None) -> str:
    """Post to a channel; returns the message's ts."""
    try:
        response = client().chat_postMessage(channel=channel, text=text, blocks=blocks or None)
    except SlackApiError as exc:
        status = exc.response.status_code
        data = exc.response.data
        code = str(data.get("error") or "") if isinstance(data, dict) else ""
        message = code if status == 200 else f"HTTP {status}" + (f": {code}" if code else "")
        retry_after = _seconds(_header(exc.response.headers, "Retry-After")) if status == 429 else None
        raise SlackError(message, permanent=code in PERMANENT_ERRORS, retry_after=retry_after) from None
    except (OSError, urllib.error.URLError) as exc:
        raise SlackError(f"{type(exc).__name__}: {exc}") from None
    return str(response.get("ts") or "")


def _header(headers: dict[str, Any], name: str) -> Any:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) and value else value
    return None


def _seconds(value: Any) -> int | None:
    try:
        return max(0, int(str(value).strip()))
    except (TypeError, ValueError):
        return None


def post_response(response_url: str, payload: dict[str, Any]) -> None:
    """Answer a slash command later through its response_url (valid for 30 minutes, 5 uses)."""
    if not response_url.startswith(("https://", "http://")):
        raise SlackError(f"not a response URL: {response_url[:80]!r}", permanent=True)
    request = urllib.request.Request(  # noqa: S310 - scheme checked above
        response_url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
            answer.read()
    except (OSError, urllib.error.URLError) as exc:
        raise SlackError(f"{type(exc).__name__}: {exc}") from None
