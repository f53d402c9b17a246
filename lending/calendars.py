"""What the calendar page and the iCalendar feeds show: reads only, shaped for the template or the feed.

The page draws each booking as a bar on the nodes it holds over a two-week window, with a heat strip
of free GPUs in 6-hour blocks; a feed lists bookings as VEVENTs for calendar apps. A feed's URL carries
a random token of its own (`CalendarFeed`, stored as a hash), made and reset by `services.reset_calendar_feed`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from lending import services
from lending.models import CalendarFeed, Reservation
from portal.models import Member, Subteam
from scheduler import slurm
from scheduler.models import Cluster

Bar = dict[str, Any]
SHOWN_STATES = [*Reservation.OPEN_STATES, Reservation.State.FINISHED]


def _placed(r: Reservation) -> list[str]:
    """The nodes a booking is drawn on: the named ones, else those Slurm reserved (none when the
    recorded host list cannot be read: the booking is drawn unplaced)."""
    if r.nodes:
        return list(r.nodes)
    try:
        return slurm.expand_hostlist(r.slurm_nodes)
    except ValueError:
        return []


def _bar(r: Reservation, start: dt.datetime, end: dt.datetime) -> Bar:
    span = (end - start).total_seconds()
    left = max(0.0, (r.start - start).total_seconds()) / span
    right = min(span, (r.end - start).total_seconds()) / span
    return {"r": r, "left": round(100 * left, 3), "width": round(100 * max(right - left, 0.004), 3)}


def _lanes(bars: list[Bar]) -> list[list[Bar]]:
    """Bars packed into as few rows as possible without overlapping (bars arrive sorted by start)."""
    lanes: list[list[Bar]] = []
    for bar in bars:
        for lane in lanes:
            if lane[-1]["r"].end <= bar["r"].start:
                lane.append(bar)
                break
        else:
            lanes.append([bar])
    return lanes


def _level(free: int, total: int) -> int:
    """0 (none free) … 4 (all free), for the heat strip's colour."""
    if total <= 0 or free <= 0:
        return 0
    return min(4, 1 + (3 * free) // total)


def _node_rows(
    cluster: Cluster, bookings: Iterable[Reservation], start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """One row per node with the bars of the bookings on it; bookings on no known node in lanes."""
    cap = services.capacity(cluster)
    by_node: dict[str, list[Bar]] = {name: [] for name in cap.nodes}
    unplaced: list[Bar] = []
    for r in bookings:
        targets = [name for name in _placed(r) if name in by_node]
        if not targets:
            unplaced.append(_bar(r, start, end))
        for name in targets:
            by_node[name].append(_bar(r, start, end))
    node_rows = [
        {"name": name, "gpus": gpus, "out": cap.unavailable.get(name), "bars": by_node[name]}
        for name, gpus in cap.nodes.items()
    ]
    return {"node_rows": node_rows, "unplaced": _lanes(unplaced)}


def _blocks(cluster: Cluster, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Free GPUs in 6-hour blocks (the least free within each block)."""
    blocks = []
    slots = services.availability(cluster, start, end)
    for i in range(0, len(slots), 6):
        chunk = slots[i : i + 6]
        free = min(s.free_gpus for s in chunk)
        blocks.append({"start": chunk[0].start, "free": free, "level": _level(free, chunk[0].total_gpus)})
    return blocks


def grid(
    cluster: Cluster, bookings: QuerySet[Reservation], start: dt.datetime, end: dt.datetime
) -> dict[str, Any]:
    """The calendar of one cluster from `start` to `end`: node rows, unplaced lanes, the heat strip and
    where now is (a percentage of the width; None when now is outside the window)."""
    shown = bookings.filter(cluster=cluster, state__in=SHOWN_STATES, start__lt=end, end__gt=start)
    now = timezone.now()
    today_left = None
    if start <= now < end:
        today_left = round(100 * (now - start).total_seconds() / (end - start).total_seconds(), 3)
    return {
        **_node_rows(cluster, shown.order_by("start"), start, end),
        "blocks": _blocks(cluster, start, end),
        "today_left": today_left,
    }


def ics(bookings: Iterable[Reservation], title: str, absolute: Callable[[str], str]) -> bytes:
    """Bookings as an iCalendar document; `absolute` turns a path into the URL a calendar app opens."""
    import icalendar

    cal = icalendar.Calendar()
    cal.add("prodid", "-//Tanuki Portal//GPU lending list//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", title)
    for r in bookings:
        event = icalendar.Event()
        event.add("uid", f"reservation-{r.pk}@tanuki-portal")
        event.add("dtstamp", r.created_at)
        event.add("dtstart", r.start)
        event.add("dtend", r.end)
        event.add("summary", f"{r.what} · {r.subteam.name}: {r.purpose}")
        event.add("description", f"{r.get_state_display()} · {r.cluster.name} · {r.requester.display_name}")
        event.add("status", "TENTATIVE" if r.state == Reservation.State.REQUESTED else "CONFIRMED")
        event.add("url", absolute(r.get_absolute_url()))
        cal.add_component(event)
    return bytes(cal.to_ical())


# --- feeds' keys ------------------------------------------------------------------------------------------

# A link just made, kept in the session until the feeds panel shows it, once: {"kind", "key", "url"}.
NEW_FEED_SESSION_KEY = "lending.new_feed"


def feed_owner(kind: str, key: str, token: str) -> Member | Subteam | None:
    """Whose feed the URL's token opens: the member (by username) or subteam (by slug) the URL names,
    if the token is that feed's current one; else None."""
    feed = (
        CalendarFeed.objects.select_related("member__user", "subteam")
        .filter(token_hash=CalendarFeed.hash(token))
        .first()
    )
    if feed is None:
        return None
    if kind == CalendarFeed.Kind.MEMBER and feed.member and feed.member.user.username == key:
        return feed.member
    if kind == CalendarFeed.Kind.SUBTEAM and feed.subteam and feed.subteam.slug == key:
        return feed.subteam
    return None


@dataclasses.dataclass(frozen=True)
class Feed:
    """One feed a member can subscribe to, and when its current link was made (None: no link yet)."""

    kind: str
    key: str
    owner: Member | Subteam
    made: dt.datetime | None


def feeds_of(member: Member, subteam_ids: Iterable[int]) -> list[Feed]:
    """The member's own feed, then those of their subteams."""
    feeds = [Feed(CalendarFeed.Kind.MEMBER, member.user.username, member, _made(member))]
    for subteam in Subteam.objects.filter(pk__in=list(subteam_ids)).select_related("calendar_feed"):
        feeds.append(Feed(CalendarFeed.Kind.SUBTEAM, subteam.slug, subteam, _made(subteam)))
    return feeds


def _made(owner: Member | Subteam) -> dt.datetime | None:
    try:
        return owner.calendar_feed.created_at
    except CalendarFeed.DoesNotExist:
        return None
