"""Know-how: every task's "what we learned" note (`Task.learnings`), searchable in one place.

The search, by database:

1. PostgreSQL, a query in words (no Japanese or other unspaced script): full-text search over the title
   and the note with the `english` configuration (stemmed: "tokenizers" finds "tokenizer"; `websearch`
   syntax: "quoted phrases", `-excluded`, `or`), best matches first. The expression is the one
   `LEARNINGS_INDEX` indexes (a GIN index, migration 0004), so the index can answer it.
2. A query with Japanese (PostgreSQL's parsers do not cut Japanese into words, so a word inside a
   sentence would never match), and every query on SQLite: each space-separated term must appear in the
   title or the note, ignoring case (`icontains`: a LIKE), newest first.
"""

from __future__ import annotations

import re

from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector
from django.db import connection
from django.db.models import Q, QuerySet

from portal.models import Subteam, Task

LEARNINGS_INDEX = "portal_task_learnings_search"
SEARCH_CONFIG = "english"
PAGE_SIZE = 20

# Scripts written without spaces between words: Japanese kana and kanji, CJK, Hangul, half-width kana.
UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\uac00-\ud7af]")


def search_vector() -> SearchVector:
    return SearchVector("title", "learnings", config=SEARCH_CONFIG)


def uses_full_text(query: str) -> bool:
    """Whether `search` answers this query with PostgreSQL's full-text search (else with LIKE)."""
    return connection.vendor == "postgresql" and not UNSPACED.search(query)


def notes() -> QuerySet[Task]:
    """Tasks that have a note, with what their row on the page shows."""
    return (
        Task.objects.exclude(learnings="")
        .select_related("subteam", "goal")
        .prefetch_related("assignees")
        .order_by("-updated_at", "-id")
    )


def search(query: str, subteam: Subteam | None = None) -> QuerySet[Task]:
    """The notes matching `query` (all of them when it is blank), of one subteam or all."""
    tasks = notes()
    if subteam is not None:
        tasks = tasks.filter(subteam=subteam)
    query = query.strip()
    if not query:
        return tasks
    if uses_full_text(query):
        wanted = SearchQuery(query, config=SEARCH_CONFIG, search_type="websearch")
        return (
            tasks.annotate(search=search_vector(), rank=SearchRank(search_vector(), wanted))
            .filter(search=wanted)
            .order_by("-rank", "-updated_at", "-id")
        )
    for term in query.split():
        tasks = tasks.filter(Q(title__icontains=term) | Q(learnings__icontains=term))
    return tasks
