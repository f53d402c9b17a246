"""Plain-text formatting shared by pages, the API and Slack messages."""

from __future__ import annotations

DAY = 86400


def format_duration(seconds: float | None) -> str:
    """`1:02:03` (hours:minutes:seconds), `2d 1:02:03` past a day; empty when there is nothing to show."""
    if seconds is None:
        return ""
    days, rest = divmod(int(seconds), DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days}d {clock}" if days else clock
