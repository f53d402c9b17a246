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


def initials(name: str) -> str:
    """The letters on a member's avatar: the first letter of the first and of the last word of the name.

    "Shun Maruyama" → "SM", "Shun" → "S", "jean-luc picard" → "JP". The same rule serves Japanese
    names written family name first with a space (full-width or not): "丸山 駿" → "丸駿". A name without
    a space ("丸山駿") is one word, so it gives its first character ("丸"): where the family name ends
    cannot be told from the characters. Latin letters are upper-cased; punctuation is skipped.
    """
    words = [word for word in name.split() if any(char.isalnum() for char in word)]
    if not words:
        return ""
    firsts = [next(char for char in word if char.isalnum()) for word in (words[0], words[-1])]
    return "".join(firsts[:1] if len(words) == 1 else firsts).upper()
