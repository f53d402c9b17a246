"""The outbox in the admin: what was sent, what waits, what gave up and why."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from portal.admin import ManagementOnly, admin_site
from slackbot.models import Notification


@admin.register(Notification, site=admin_site)
class NotificationAdmin(ManagementOnly, admin.ModelAdmin[Notification]):
    list_display = (
        "created_at",
        "channel",
        "short_text",
        "status",
        "attempts",
        "next_attempt_at",
        "last_error",
    )
    list_filter = ("channel",)
    search_fields = ("text", "event_key", "channel")
    readonly_fields = (
        "event_key",
        "created_at",
        "attempts",
        "sent_at",
        "gave_up_at",
        "message_ts",
        "last_error",
    )

    @admin.display(description=_("text"))
    def short_text(self, obj: Notification) -> str:
        return obj.text[:80]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not settings.SLACK_BOT_TOKEN:
            messages.warning(
                request, _("SLACK_BOT_TOKEN is not set: notifications are recorded here but not sent.")
            )
        return super().changelist_view(request, extra_context)
