"""The nav's badge for admins: how many bookings await their decision, linking to them."""

from __future__ import annotations

from typing import Any

from django import template

from lending import access, services

register = template.Library()


@register.inclusion_tag("lending/_awaiting_badge.html", takes_context=True)
def awaiting_approval_badge(context: template.Context) -> dict[str, Any]:
    """Nothing for anyone who may not decide (no query); one count for an admin, or the one the
    lending list already made (`awaiting_count` in its context)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not access.can_decide_reservation(user):
        return {"count": 0}
    count = context.get("awaiting_count")
    if count is None:
        count = services.awaiting_approval().count()
    return {"count": count}
