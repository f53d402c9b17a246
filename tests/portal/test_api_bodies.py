"""Under /api/, a request body the API cannot read is answered in JSON, never with Django's HTML page."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.test import Client, RequestFactory

from portal.middleware import ApiRequestErrorsMiddleware
from scheduler.models import Job
from tests.personas import Team

JOBS = "/api/v1/jobs/"


def client(team: Team) -> Client:
    return team.client("member")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (json.dumps({"subteam": "sft", "command": "x" * 3_000_000}), "application/json"),
        ("subteam=sft&command=" + "x" * 3_000_000, "application/x-www-form-urlencoded"),
    ],
    ids=["json", "form"],
)
def test_a_body_over_the_limit_is_413_in_json(team: Team, body: str, content_type: str) -> None:
    response = client(team).post(JOBS, body, content_type=content_type)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "larger than 2621440 bytes" in response.json()["detail"]
    assert not Job.objects.exists()


def test_multipart_fields_over_the_limit_are_413_in_json(team: Team) -> None:
    response = client(team).post(JOBS, {"subteam": "sft", "command": "x" * 3_000_000})
    assert response.status_code == 413 and "detail" in response.json()


def test_the_limit_is_the_setting(team: Team, settings: object) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000  # type: ignore[attr-defined]
    response = client(team).post(JOBS, json.dumps({"command": "x" * 2000}), content_type="application/json")
    assert response.status_code == 413 and "1000 bytes" in response.json()["detail"]


def test_malformed_json_is_400_in_json(team: Team) -> None:
    response = client(team).post(JOBS, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "JSON parse error" in response.json()["detail"]


def test_json_nested_too_deeply_is_400_in_json(team: Team) -> None:
    response = client(team).post(JOBS, "[" * 100_000 + "]" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"] == "The JSON body is nested too deeply."


def test_too_many_form_fields_are_400_in_json(team: Team) -> None:
    body = "&".join(f"f{i}=1" for i in range(1500))
    response = client(team).post(JOBS, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "too many fields" in response.json()["detail"]


def test_pages_outside_the_api_are_left_to_django(rf: RequestFactory) -> None:
    middleware = ApiRequestErrorsMiddleware(lambda request: HttpResponse())
    error = RequestDataTooBig()
    assert middleware.process_exception(rf.post("/jobs/new/"), error) is None
    assert middleware.process_exception(rf.post("/api/v1/jobs/"), error) is not None
