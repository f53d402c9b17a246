"""Template filters over `portal.formatting`: `{% load formatting %}`, then `{{ seconds|duration }}`."""

from __future__ import annotations

from django import template

from portal.formatting import format_duration

register = template.Library()


@register.filter
def duration(seconds: object) -> str:
    """`1:02:03`, `2d 1:02:03`; empty for anything but a number."""
    if not isinstance(seconds, int | float):
        return ""
    return format_duration(seconds)
