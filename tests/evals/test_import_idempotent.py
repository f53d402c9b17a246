"""Importing the same FastChat judgment file twice updates the result it made, not a second row."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from evals import services
from evals.models import EvalJudgment, EvalResult, EvalResultEvent
from tests.evals.conftest import JUDGMENTS_AB, QUESTIONS_JSONL, SCORES_A, jsonl, judgment_rows
from tests.personas import Team


def files() -> dict[str, SimpleUploadedFile]:
    return {
        "judgments": SimpleUploadedFile("gpt-4_single.jsonl", JUDGMENTS_AB),
        "questions": SimpleUploadedFile("question.jsonl", QUESTIONS_JSONL),
    }


def test_the_web_form_imports_the_same_file_twice_into_the_same_rows(team: Team) -> None:
    client = team.client("member")
    assert client.post("/evals/import/", {"subteam": team.sft.pk, **files()}).status_code == 302
    first = dict(EvalResult.objects.values_list("model_name", "pk"))
    assert client.post("/evals/import/", {"subteam": team.sft.pk, **files()}).status_code == 302
    assert dict(EvalResult.objects.values_list("model_name", "pk")) == first
    assert EvalJudgment.objects.filter(result_id=first["model-a"]).count() == 9  # replaced, not added
    board = client.get("/leaderboard/").content.decode()
    assert board.count(f'href="/evals/results/{first["model-a"]}/"') >= 1
    assert EvalResultEvent.objects.count() == 2  # one per model: the second import changed no score


def test_the_api_imports_the_same_file_twice_into_the_same_rows(team: Team) -> None:
    api = APIClient()
    api.force_authenticate(team.users["member"])
    url = "/api/v1/eval-results/import/"
    first = api.post(url, {"subteam": "sft", **files()}, format="multipart")
    again = api.post(url, {"subteam": "sft", **files()}, format="multipart")
    assert first.status_code == again.status_code == 201, again.content
    assert sorted(r["id"] for r in first.json()) == sorted(r["id"] for r in again.json())
    assert EvalResult.objects.count() == 2
    listed = api.get("/api/v1/eval-results/?subteam=sft").json()
    assert sorted(r["model_name"] for r in listed["results"]) == ["model-a", "model-b"]


def test_a_changed_file_of_the_same_questions_updates_the_scores(team: Team) -> None:
    [before] = services.import_judgments(
        None,
        judgments_jsonl=JUDGMENTS_AB,
        questions_jsonl=QUESTIONS_JSONL,
        model_name="model-a",
        subteam=team.sft,
    )
    rescored = jsonl(judgment_rows("model-a", {**SCORES_A, (4, 1): 10}))
    [after] = services.import_judgments(
        None, judgments_jsonl=rescored, questions_jsonl=QUESTIONS_JSONL, subteam=team.sft, question_set="ja"
    )
    assert after.pk == before.pk and EvalResult.objects.count() == 1
    after.refresh_from_db()
    assert (after.average, after.coding, after.question_set) == (7.25, 10.0, "ja")
    assert EvalResultEvent.objects.filter(result=after).count() == 2  # re-scored: said again


def test_another_judge_question_file_or_subteam_is_another_result(team: Team) -> None:
    def load(**kwargs: object) -> int:
        [result] = services.import_judgments(
            None,
            judgments_jsonl=JUDGMENTS_AB,
            questions_jsonl=kwargs.pop("questions", QUESTIONS_JSONL),  # type: ignore[arg-type]
            model_name="model-a",
            **kwargs,  # type: ignore[arg-type]
        )
        return result.pk

    base = load(subteam=team.sft)
    assert load(subteam=team.sft) == base
    assert load(subteam=team.sft, judge_model="gpt-4o") != base
    assert load(subteam=team.pretrain) != base
    assert load(subteam=None) != base
    assert load(subteam=team.sft, questions=QUESTIONS_JSONL + b"\n") != base  # another file: another hash
    assert EvalResult.objects.count() == 5
