"""The lead's text as HTML: Markdown (CommonMark with tables and strikethrough), rendered safely.

markdown-it-py's `js-default` preset does not pass raw HTML through (`<script>` comes out as text) and
refuses `javascript:`, `vbscript:`, `file:` and `data:` links; images are turned off (a report links,
it does not load other sites' pictures). A single line break is kept as a break: people write reports
line by line.
"""

from __future__ import annotations

from functools import cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@cache
def _renderer() -> MarkdownIt:
    return MarkdownIt("js-default", {"breaks": True}).disable("image")


def render(text: str) -> SafeString:
    # Safe: raw HTML is escaped by the renderer (html=False) and unsafe link schemes are refused.
    html: str = _renderer().render(text or "")
    return mark_safe(html)  # noqa: S308
