"""/api/v1/eval-results/: list with filters, read with judgments, import (multipart and JSON), baselines."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from evals import services
from evals.models import CATEGORIES, EvalResult
from tests.evals.conftest import JUDGMENTS_A, JUDGMENTS_AB, QUESTIONS_JSONL, jsonl
from tests.personas import Team

URL = "/api/v1/eval-results/"


def api(team: Team, role: str) -> APIClient:
    client = APIClient(headers={"accept-language": "en"})
    if role != "anon":
        token = Token.objects.create(user=team.users[role])
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def results(team: Team) -> list[EvalResult]:
    imported = services.import_judgments(
        team.member("member"), judgments_jsonl=JUDGMENTS_AB, questions_jsonl=QUESTIONS_JSONL, subteam=team.sft
    )
    baseline = services.add_baseline(
        None, model_name="external reference model", average=7.81, categories={"coding": 5.2}
    )
    return [*imported, baseline]


def test_the_list_has_every_score(team: Team, results: list[EvalResult]) -> None:
    body = api(team, "other").get(URL).json()
    assert body["count"] == 3
    row = next(r for r in body["results"] if r["model_name"] == "model-a")
    assert (row["average"], row["writing"], row["stem"], row["subteam"]) == (6.25, 7.6667, None, "sft")
    assert set(CATEGORIES) <= set(row)
    assert row["created_by"] == "member"
    assert row["web_url"] == f"/evals/results/{row['id']}/"


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({"subteam": "sft"}, {"model-a", "model-b"}),
        ({"subteam": "none"}, {"external reference model"}),
        ({"model": "B"}, {"model-b"}),
        ({"is_baseline": "true"}, {"external reference model"}),
        ({"benchmark": "other"}, set()),
        ({"source": "import"}, {"model-a", "model-b"}),
    ],
)
def test_the_list_filters(
    team: Team, results: list[EvalResult], query: dict[str, str], names: set[str]
) -> None:
    body = api(team, "member").get(URL, query).json()
    assert {r["model_name"] for r in body["results"]} == names


def test_an_unknown_subteam_is_a_400(team: Team, results: list[EvalResult]) -> None:
    assert api(team, "member").get(URL, {"subteam": "nope"}).status_code == 400


def test_one_result_has_its_judgments(team: Team, results: list[EvalResult]) -> None:
    body = api(team, "member").get(f"{URL}{results[0].pk}/").json()
    assert len(body["judgments"]) == 9
    assert body["judgments"][0] == {
        "question_id": "1",
        "category": "writing",
        "turn": 1,
        "score": 8.0,
        "question": "短い詩を書いて",
        "judgment": "評価: Rating: [[8]]",
    }


def test_the_list_runs_the_same_number_of_queries_for_more_rows(
    team: Team, results: list[EvalResult]
) -> None:
    client = api(team, "member")
    client.get(URL)
    with CaptureQueriesContext(connection) as few:
        client.get(URL)
    for i in range(8):
        services.add_baseline(
            team.member("admin"), model_name=f"ref {i}", average=5.0, categories={}, subteam=team.pretrain
        )
    with CaptureQueriesContext(connection) as more:
        assert client.get(URL).json()["count"] == 11
    assert len(few) == len(more)


def test_anonymous_is_401(team: Team, results: list[EvalResult]) -> None:
    assert api(team, "anon").get(URL).status_code == 401
    assert api(team, "anon").post(f"{URL}import/", {}, format="json").status_code == 401


# --- import ---------------------------------------------------------------------------------------------


def test_a_member_imports_files_for_their_subteam(team: Team) -> None:
    response = api(team, "member").post(
        f"{URL}import/",
        {
            "subteam": "sft",
            "judgments": SimpleUploadedFile("gpt-4_single.jsonl", JUDGMENTS_AB),
            "questions": SimpleUploadedFile("question.jsonl", QUESTIONS_JSONL),
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert sorted(r["model_name"] for r in response.json()) == ["model-a", "model-b"]
    assert EvalResult.objects.filter(subteam=team.sft, source="import").count() == 2


def test_an_import_as_json_text(team: Team) -> None:
    payload = {
        "subteam": "sft",
        "judgments_jsonl": JUDGMENTS_A.decode(),
        "questions_jsonl": QUESTIONS_JSONL.decode(),
        "judge_model": "gpt-4o",
        "question_set": "japanese_mt_bench",
    }
    response = api(team, "lead").post(f"{URL}import/", payload, format="json")
    assert response.status_code == 201, response.content
    [row] = response.json()
    assert (row["average"], row["judge_model"], row["question_set"]) == (6.25, "gpt-4o", "japanese_mt_bench")


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"questions_jsonl": QUESTIONS_JSONL.decode()}, "judgments", "judgments_jsonl"),
        (
            {"judgments_jsonl": jsonl([{"question_id": 42, "model": "m", "turn": 1, "score": 3}]).decode()},
            "non_field_errors",
            "line 1: unknown question_id 42",
        ),
        ({"judgments_jsonl": JUDGMENTS_A.decode(), "model_name": "zzz"}, "model_name", "model-a"),
    ],
)
def test_a_bad_import_is_a_400_naming_the_problem(
    team: Team, payload: dict[str, Any], field: str, message: str
) -> None:
    payload = {"subteam": "sft", "questions_jsonl": QUESTIONS_JSONL.decode(), **payload}
    response = api(team, "member").post(f"{URL}import/", payload, format="json")
    assert response.status_code == 400
    assert message in str(response.json()[field])
    assert EvalResult.objects.count() == 0


@pytest.mark.parametrize(("role", "subteam"), [("other", "sft"), ("member", None), ("lead", "pretrain")])
def test_an_import_elsewhere_is_refused(team: Team, role: str, subteam: str | None) -> None:
    payload = {
        "subteam": subteam,
        "judgments_jsonl": JUDGMENTS_A.decode(),
        "questions_jsonl": QUESTIONS_JSONL.decode(),
    }
    response = api(team, role).post(f"{URL}import/", payload, format="json")
    assert response.status_code == 403
    assert EvalResult.objects.count() == 0


# --- baselines ------------------------------------------------------------------------------------------


def baseline(subteam: str | None = None) -> dict[str, Any]:
    return {
        "model_name": "external reference model",
        "average": 7.81,
        "categories": {"coding": 5.2, "extraction": 8.15, "writing": 8.9},
        "subteam": subteam,
        "judge_model": "gpt-4",
        "notes": "Published figures.",
    }


def test_an_admin_adds_a_baseline(team: Team) -> None:
    response = api(team, "admin").post(f"{URL}baselines/", baseline(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["is_baseline"], body["source"], body["coding"], body["math"]) == (True, "manual", 5.2, None)
    assert response.json()["id"] == EvalResult.objects.get().pk


def test_a_lead_adds_one_for_their_subteam(team: Team) -> None:
    assert api(team, "lead").post(f"{URL}baselines/", baseline("sft"), format="json").status_code == 201


@pytest.mark.parametrize(("role", "subteam"), [("member", "sft"), ("lead", None), ("other", "pretrain")])
def test_a_baseline_from_anyone_else_is_refused(team: Team, role: str, subteam: str | None) -> None:
    response = api(team, role).post(f"{URL}baselines/", baseline(subteam), format="json")
    assert response.status_code == 403
    assert EvalResult.objects.count() == 0


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"average": 12}, "average"),
        ({"categories": {"poetry": 3}}, "categories"),
        ({"model_name": ""}, "model_name"),
    ],
)
def test_a_bad_baseline_is_a_400(team: Team, change: dict[str, Any], field: str) -> None:
    response = api(team, "admin").post(f"{URL}baselines/", {**baseline(), **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert EvalResult.objects.count() == 0


def test_results_are_read_only(team: Team, results: list[EvalResult]) -> None:
    client = api(team, "admin")
    assert client.patch(f"{URL}{results[0].pk}/", {"average": 1}, format="json").status_code == 405
    assert client.delete(f"{URL}{results[0].pk}/").status_code == 405


def test_the_schema_documents_the_endpoints(team: Team) -> None:
    schema = api(team, "member").get("/api/schema/", {"format": "json"}).json()
    assert {
        "/api/v1/eval-results/",
        "/api/v1/eval-results/import/",
        "/api/v1/eval-results/baselines/",
    } <= set(schema["paths"])
