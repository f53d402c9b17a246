from __future__ import annotations

from django import template
from django.utils.safestring import SafeString

from reports import markdown as md

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """`{{ report.body|markdown }}`: the lead's Markdown as safe HTML (`reports.markdown`)."""
    return md.render(text)
