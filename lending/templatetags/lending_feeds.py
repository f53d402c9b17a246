"""The calendar feeds panel: on a member's own page and the lending list, each feed with a button that
makes a new link (the old one stops working); a link just made is shown here, once."""

from __future__ import annotations

from typing import Any

from django import template

from lending import access, calendars
from portal.access import member_of, subteams_of
from portal.models import Member

register = template.Library()


@register.inclusion_tag("lending/_feeds.html", takes_context=True)
def calendar_feeds(context: template.Context, member: Member | None = None) -> dict[str, Any]:
    """Nothing unless the page is the signed-in member's own (`member` None: the lending list)."""
    request = context.get("request")
    me = member_of(request.user) if request is not None else None
    if request is None or me is None or (member is not None and member.pk != me.pk):
        return {"feeds": []}
    fresh = request.session.pop(calendars.NEW_FEED_SESSION_KEY, None) or {}
    fresh_for = (fresh.get("kind"), fresh.get("key"))
    feeds = [
        {
            "feed": feed,
            "may_reset": access.can_reset_feed(request.user, feed.owner),
            "new_url": fresh.get("url") if fresh_for == (feed.kind, feed.key) else "",
        }
        for feed in calendars.feeds_of(me, subteams_of(request.user))
    ]
    # An admin may reset the link of a subteam they are not in: its new link is shown above the list.
    other = fresh if fresh and not any(row["new_url"] for row in feeds) else None
    return {"feeds": feeds, "other": other, "csrf_token": context.get("csrf_token"), "back": request.path}
