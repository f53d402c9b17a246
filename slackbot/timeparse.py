"""Times typed in a slash command, read in the portal's time zone (Asia/Tokyo). Pure functions.

Accepted forms (one or two words):
    2026-12-01T09:00    2026-12-01 09:00    12-01 09:00
    today 9:00    tomorrow 18:30    今日 9:00    明日 9:00
    9:00    (today; as an end time: the start's day, or the day after if that is not after the start)
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from django.conf import settings

_TIME = re.compile(r"^(\d{1,2}):(\d{2})\Z")
_DATE = re.compile(r"^(?:(\d{4})-)?(\d{1,2})-(\d{1,2})\Z")
_ISO = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2})T(\d{1,2}:\d{2})\Z")
_DAY_WORDS = {"today": 0, "今日": 0, "きょう": 0, "tomorrow": 1, "明日": 1, "あした": 1}


class TimeError(ValueError):
    """A time the command could not read (the message names the words)."""


def zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def _clock(word: str) -> dt.time | None:
    match = _TIME.match(word)
    if not match:
        return None
    hour, minute = int(match[1]), int(match[2])
    if hour > 23 or minute > 59:
        return None
    return dt.time(hour, minute)


def _date(word: str, today: dt.date) -> dt.date | None:
    if word.lower() in _DAY_WORDS:
        return today + dt.timedelta(days=_DAY_WORDS[word.lower()])
    match = _DATE.match(word)
    if not match:
        return None
    year = int(match[1]) if match[1] else today.year
    try:
        day = dt.date(year, int(match[2]), int(match[3]))
    except ValueError:
        return None
    if not match[1] and day < today:
        day = day.replace(year=today.year + 1)  # "01-05" typed in December means next January
    return day


def parse_when(
    words: list[str], now: dt.datetime, *, start: dt.datetime | None = None
) -> tuple[dt.datetime, int]:
    """Read a time from the front of `words`: (aware datetime, number of words used).

    `start` is given when reading an end time: a bare clock time then belongs to the start's day."""
    if not words:
        raise TimeError("")
    tz = zone()
    today = now.astimezone(tz).date()
    first = words[0]
    iso = _ISO.match(first)
    if iso:
        day, clock = _date(iso[1], today), _clock(iso[2])
        if day is None or clock is None:
            raise TimeError(first)
        return dt.datetime.combine(day, clock, tzinfo=tz), 1
    day = _date(first, today)
    if day is not None:
        clock = _clock(words[1]) if len(words) > 1 else None
        if clock is None:
            raise TimeError(" ".join(words[:2]))
        return dt.datetime.combine(day, clock, tzinfo=tz), 2
    clock = _clock(first)
    if clock is None:
        raise TimeError(first)
    if start is None:
        return dt.datetime.combine(today, clock, tzinfo=tz), 1
    local_start = start.astimezone(tz)
    when = dt.datetime.combine(local_start.date(), clock, tzinfo=tz)
    if when <= local_start:
        when += dt.timedelta(days=1)
    return when, 1
