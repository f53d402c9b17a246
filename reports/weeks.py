"""Weeks as the reports count them: Monday to Sunday in the portal's time zone (`TIME_ZONE`), named by
their Monday."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone

_ISO_WEEK = re.compile(r"^(\d{4})-?W(\d{1,2})\Z", re.IGNORECASE)
LAST = {"last", "prev", "previous", "先週"}
THIS = {"this", "now", "current", "今週"}


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def this_week(now: dt.datetime | None = None) -> dt.date:
    """The Monday of the week `now` (default: now) falls in, in the portal's time zone."""
    return monday_of(timezone.localdate(now))


def bounds(week: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[Monday 00:00, next Monday 00:00) in the portal's time zone, as aware datetimes."""
    zone = timezone.get_default_timezone()
    start = dt.datetime.combine(week, dt.time(0), tzinfo=zone)
    return start, dt.datetime.combine(week + dt.timedelta(days=7), dt.time(0), tzinfo=zone)


def last_day(week: dt.date) -> dt.date:
    return week + dt.timedelta(days=6)


def parse(text: str, today: dt.date | None = None) -> dt.date | None:
    """A week from what people type: `2026-06-03` (any day of it), `2026-W23`, `last`/`先週`,
    `this`/`今週`. None when it is none of those."""
    word = text.strip().translate(_FULL_WIDTH)
    current = monday_of(today or timezone.localdate())
    if word.lower() in THIS:
        return current
    if word.lower() in LAST:
        return current - dt.timedelta(days=7)
    iso = _ISO_WEEK.match(word)
    try:
        if iso:
            return dt.date.fromisocalendar(int(iso.group(1)), int(iso.group(2)), 1)
        return monday_of(dt.date.fromisoformat(word))
    except ValueError:
        return None


_FULL_WIDTH = str.maketrans("０１２３４５６７８９－", "0123456789-")


class WeekConverter:
    """`<week:week>` in URL patterns: a date (`2026-06-01`); any day names the week it falls in."""

    regex = r"\d{4}-\d{2}-\d{2}"

    def to_python(self, value: str) -> dt.date:
        return monday_of(dt.date.fromisoformat(value))  # ValueError: no match, a 404

    def to_url(self, value: dt.date) -> str:
        return monday_of(value).isoformat()
