"""API: `/api/v1/metrics/series/` (downsampled chart data) and `/api/v1/metrics/keys/`.

Series: `?job=<uuid>[&job=…]&key=train/loss[&min_step=&max_step=&points=2000]` -> one entry per job
with `steps`, `values` (bucket means), `mins`, `maxs` and the bucket `width` (see metrics.store).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics import access, store
from scheduler.models import Job

MAX_JOBS = 12


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
    found = {job.pk: job for job in Job.objects.filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(_("No such job: %(id)s") % {"id": missing[0]})
    jobs = [found[i] for i in dict.fromkeys(ids)]
    for job in jobs:
        if not access.can_see_metrics(request.user, job):
            raise PermissionDenied
    return jobs


class SeriesView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[SeriesQuerySerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        q = _query(SeriesQuerySerializer, request)
        jobs = _jobs(request, q["job"])
        return Response(
            {
                "key": q["key"],
                "series": [
                    {
                        **store.series(job.pk, q["key"], q.get("min_step"), q.get("max_step"), q["points"]),
                        "name": job.name,
                    }
                    for job in jobs
                ],
            }
        )


class KeysView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(parameters=[KeysQuerySerializer], responses={200: dict})
    def get(self, request: Request) -> Response:
        q = _query(KeysQuerySerializer, request)
        jobs = _jobs(request, q["job"])
        return Response({"keys": store.keys(job.pk for job in jobs)})
