"""Slack's request signatures (v0): who may call the slash command endpoint.

A request is accepted once: signed with the signing secret over `v0:{timestamp}:{raw body}`, its
timestamp within five minutes of now, and its signature not seen before in that window.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from slack_sdk.signature import SignatureVerifier

from slackbot.models import SeenRequest

log = logging.getLogger("slackbot")

WINDOW_SECONDS = 5 * 60


class Verdict(enum.Enum):
    OK = "ok"
    NOT_CONFIGURED = "not configured"
    UNSIGNED = "unsigned"
    EXPIRED = "expired"
    FORGED = "forged"
    REPLAYED = "replayed"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The X-Slack-Signature Slack sends for this body (for tests and local tools)."""
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None
    return signature


def verify(request: HttpRequest) -> Verdict:
    """Check the request's signature and remember it, so the same request is not accepted twice."""
    secret = settings.SLACK_SIGNING_SECRET
    if not secret:
        return Verdict.NOT_CONFIGURED
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
    signature = request.headers.get("X-Slack-Signature", "")
    if not timestamp or not signature:
        return Verdict.UNSIGNED
    if not timestamp.isascii() or not timestamp.isdigit():
        return Verdict.FORGED
    if abs(time.time() - int(timestamp)) > WINDOW_SECONDS:
        return Verdict.EXPIRED
    try:
        valid = SignatureVerifier(secret).is_valid(request.body, timestamp, signature)
    except UnicodeDecodeError:
        valid = False  # Slack sends form-encoded ASCII; anything else is not from Slack
    if not valid:
        return Verdict.FORGED
    return Verdict.OK if _first_sighting(signature) else Verdict.REPLAYED


def _first_sighting(signature: str) -> bool:
    """Record the signature; False if it was already recorded (a replay). Old records are dropped."""
    now = timezone.now()
    SeenRequest.objects.filter(seen_at__lt=now - dt.timedelta(seconds=2 * WINDOW_SECONDS)).delete()
    try:
        with transaction.atomic():
            SeenRequest.objects.create(signature=signature[:80], seen_at=now)
    except IntegrityError:
        return False
    return True
