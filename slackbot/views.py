"""POST /slack/commands/: Slack's slash command endpoint. Signed requests only (slackbot.signing)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from slackbot import commands, signing, slack

log = logging.getLogger("slackbot")


@csrf_exempt  # Slack cannot send a CSRF token; the request signature stands in for it
@require_POST
def command(request: HttpRequest) -> HttpResponse:
    verdict = signing.verify(request)
    if verdict is signing.Verdict.NOT_CONFIGURED:
        log.error("Slack command refused: SLACK_SIGNING_SECRET is not set")
        return HttpResponse("Slack is not configured on this portal.", status=503, content_type="text/plain")
    if verdict is not signing.Verdict.OK:
        log.warning("Slack command refused: %s request", verdict.value)
        return HttpResponse("Invalid request signature.", status=401, content_type="text/plain")
    payload = request.POST
    if payload.get("ssl_check") == "1":
        return HttpResponse(status=200)  # Slack checking the certificate: no command to run
    # The member's own choice (profile), else Slack's locale when it sends one, else Japanese.
    member = commands.member_for(payload.get("user_id", ""))
    language = commands.language_for((member.language if member else "") or payload.get("locale", ""))
    with translation.override(language):
        try:
            reply = commands.handle(payload.get("user_id", ""), payload.get("text", ""))
        except Exception:
            log.exception("Slack command %r failed", payload.get("text", "")[:100])
            reply = commands.Reply(_("Something went wrong; the portal's log has the details."))
    if reply.later is not None:
        response_url = payload.get("response_url", "")
        threading.Thread(
            target=answer_later,
            args=(reply.later, response_url, language),
            name="slack-response",
            daemon=True,
        ).start()
    return JsonResponse({"response_type": "ephemeral", "text": reply.text})


def answer_later(work: Callable[[], str], response_url: str, language: str) -> None:
    """Do the slow part of a command and post its answer to the response_url (in a thread of its own)."""
    try:
        with translation.override(language):
            try:
                text = work()
            except Exception:
                log.exception("Slack command failed")
                text = _("Something went wrong; the portal's log has the details.")
        slack.post_response(
            response_url, {"response_type": "ephemeral", "replace_original": False, "text": text}
        )
    except slack.SlackError as exc:
        log.warning("could not answer through the response_url: %s", exc)
    finally:
        connections.close_all()
