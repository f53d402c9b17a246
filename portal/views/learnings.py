"""Know-how: every task's "what we learned" note in one searchable, paginated list."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render

from portal import learnings
from portal.http import HtmxHttpRequest
from portal.models import Subteam


def learning_list(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    subteams = list(Subteam.objects.all())
    slug = request.GET.get("subteam", "")
    subteam = next((s for s in subteams if s.slug == slug), None)
    page = Paginator(learnings.search(query, subteam), learnings.PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "page": page,
        "query": query,
        "subteams": subteams,
        "subteam": subteam,
        "params": params.urlencode(),
    }
    template = "portal/learnings.html#results" if request.htmx else "portal/learnings.html"
    return render(request, template, context)
