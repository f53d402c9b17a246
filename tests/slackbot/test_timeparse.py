"""Reading times typed in a command (Asia/Tokyo)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from slackbot.timeparse import TimeError, parse_when

TOKYO = zoneinfo.ZoneInfo("Asia/Tokyo")
NOW = dt.datetime(2026, 11, 28, 22, 30, tzinfo=TOKYO)  # 13:30 UTC


def at(year: int, month: int, day: int, hour: int, minute: int) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=TOKYO)


@pytest.mark.parametrize(
    ("words", "expected", "used"),
    [
        (["2026-12-01T09:00"], at(2026, 12, 1, 9, 0), 1),
        (["2026-12-01", "9:00", "rest"], at(2026, 12, 1, 9, 0), 2),
        (["12-01", "09:30"], at(2026, 12, 1, 9, 30), 2),
        (["01-05", "10:00"], at(2027, 1, 5, 10, 0), 2),
        (["today", "23:00"], at(2026, 11, 28, 23, 0), 2),
        (["tomorrow", "9:00"], at(2026, 11, 29, 9, 0), 2),
        (["Tomorrow", "9:00"], at(2026, 11, 29, 9, 0), 2),
        (["明日", "9:00"], at(2026, 11, 29, 9, 0), 2),
        (["今日", "23:15"], at(2026, 11, 28, 23, 15), 2),
        (["23:45"], at(2026, 11, 28, 23, 45), 1),
        (["明日", "９:００"], at(2026, 11, 29, 9, 0), 2),  # full-width digits, as a Japanese IME types them
    ],
)
def test_start_times(words: list[str], expected: dt.datetime, used: int) -> None:
    assert parse_when(words, NOW) == (expected, used)


def test_the_day_is_tokyos_even_when_utc_is_on_the_day_before() -> None:
    now = dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.UTC)  # already the 29th in Tokyo
    assert parse_when(["9:00"], now) == (at(2026, 11, 29, 9, 0), 1)


def test_a_bare_end_time_is_on_the_start_day_or_the_next() -> None:
    start = at(2026, 11, 29, 9, 0)
    assert parse_when(["18:00"], NOW, start=start) == (at(2026, 11, 29, 18, 0), 1)
    assert parse_when(["6:00"], NOW, start=start) == (at(2026, 11, 30, 6, 0), 1)
    assert parse_when(["9:00"], NOW, start=start) == (at(2026, 11, 30, 9, 0), 1)


@pytest.mark.parametrize(
    "words",
    [
        [],
        ["soon"],
        ["25:00"],
        ["9:60"],
        ["tomorrow"],
        ["tomorrow", "noon"],
        ["2026-02-30", "9:00"],
        ["2026-12-01T9"],
        ["9"],
    ],
)
def test_unreadable_times(words: list[str]) -> None:
    with pytest.raises(TimeError):
        parse_when(words, NOW)
