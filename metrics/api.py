"""API: `/api/v1/metrics/series/` (downsampled chart data) and `/api/v1/metrics/keys/`.

Series: `?job=<uuid>[&job=…]&key=train/loss[&min_step=&max_step=&points=2000]` -> one entry per job
with `steps`, `values` (bucket means), `mins`, `maxs` and the bucket `width` (see metrics.store).

Series responses are conditional and compressed: their ETag and Last-Modified come from the jobs' read
cursors (offset, points stored), so a page reloaded before new points arrived gets a 304 without
reading a point; a running job's response is revalidated on each use, a finished one (its cursor final)
is kept for a day. Values go out with 7 significant digits (what float32 training logs hold) and
gzipped: the responses carry no secret (BREACH needs one beside reflected input), only public series.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.utils.cache import get_conditional_response, patch_cache_control, patch_vary_headers
from django.utils.decorators import method_decorator
from django.utils.http import http_date
from django.utils.translation import gettext_lazy as _
from django.views.decorators.gzip import gzip_page
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics import access, store
from metrics.models import MetricCursor
from scheduler.models import Job

MAX_JOBS = 12
FINISHED_MAX_AGE = 24 * 3600  # a final cursor reads nothing more: the series cannot change
DIGITS = 7


class SeriesQuerySerializer(serializers.Serializer[dict[str, Any]]):
    job = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=MAX_JOBS)
    key = serializers.CharField(max_length=200)
    min_step = serializers.IntegerField(required=False, min_value=0)
    max_step = serializers.IntegerField(required=False, min_value=0)
    points = serializers.IntegerField(required=False, min_value=10, max_value=5000, default=2000)


class KeysQuerySerializer(serializers.Serializer[dict[str, Any]]):
    job = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=MAX_JOBS)


def _query(
    serializer_class: type[serializers.Serializer[dict[str, Any]]], request: Request
) -> dict[str, Any]:
    data: dict[str, Any] = {k: request.query_params.get(k) for k in request.query_params if k != "job"}
    data["job"] = request.query_params.getlist("job")
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _jobs(request: Request, ids: list[uuid.UUID]) -> list[Job]:
    found = {job.pk: job for job in Job.objects.filter(pk__in=ids).select_related("metric_cursor")}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(_("No such job: %(id)s") % {"id": missing[0]})
    jobs = [found[i] for i in dict.fromkeys(ids)]
    for job in jobs:
        if not access.can_see_metrics(request.user, job):
            raise PermissionDenied
    return jobs


def _cursor(job: Job) -> MetricCursor | None:
    try:
        return job.metric_cursor
    except ObjectDoesNotExist:
        return None


def _validators(q: dict[str, Any], jobs: list[Job]) -> tuple[str, float | None, bool]:
    """ETag, Last-Modified (a timestamp) and whether every job's series is final, from the cursors."""
    parts = [repr(sorted((k, str(v)) for k, v in q.items() if k != "job"))]
    stamps: list[float] = []
    final = True
    for job in jobs:
        cursor = _cursor(job)
        if cursor is None:
            parts.append(f"{job.pk}:-:{job.name}")
            final = False
            continue
        parts.append(f"{job.pk}:{cursor.offset}:{cursor.points}:{cursor.last_step}:{cursor.final}:{job.name}")
        stamps.append(cursor.updated_at.timestamp())
        final = final and cursor.final
    etag = '"' + hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] + '"'
    return etag, max(stamps) if len(stamps) == len(jobs) else None, final


def _rounded(series: dict[str, Any]) -> dict[str, Any]:
    for name in ("values", "mins", "maxs"):
        if name in series:
            series[name] = [float(f"{v:.{DIGITS}g}") for v in series[name]]
    return series


@method_decorator(gzip_page, name="dispatch")
class SeriesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[SeriesQuerySerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        q = _query(SeriesQuerySerializer, request)
        jobs = _jobs(request, q["job"])
        etag, modified, final = _validators(q, jobs)
        last_modified = int(modified) if modified is not None else None
        not_modified = get_conditional_response(request, etag=etag, last_modified=last_modified)
        response: Any = not_modified
        if response is None:
            response = Response(
                {
                    "key": q["key"],
                    "series": [
                        {
                            **_rounded(
                                store.series(
                                    job.pk, q["key"], q.get("min_step"), q.get("max_step"), q["points"]
                                )
                            ),
                            "name": job.name,
                        }
                        for job in jobs
                    ],
                }
            )
        response["ETag"] = etag
        if last_modified is not None:
            response["Last-Modified"] = http_date(last_modified)
        if final:
            patch_cache_control(response, private=True, max_age=FINISHED_MAX_AGE)
        else:
            patch_cache_control(response, private=True, no_cache=True)
        patch_vary_headers(response, ["Cookie"])
        return response  # type: ignore[no-any-return]


class KeysView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[KeysQuerySerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        q = _query(KeysQuerySerializer, request)
        jobs = _jobs(request, q["job"])
        return Response({"keys": store.keys(job.pk for job in jobs)})
