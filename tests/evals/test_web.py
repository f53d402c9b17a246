"""The leaderboards, a result's page, the import and baseline forms: through the URLs, as each persona."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from evals import services
from evals.models import CATEGORIES, EvalResult
from portal.models import Goal
from tests.evals.conftest import JUDGMENTS_A, JUDGMENTS_AB, QUESTIONS_JSONL, jsonl
from tests.personas import Team

SCORES = {  # DOMAIN.md: the team's 8x8B DPO and the external reference model (judge gpt-4)
    "8x8B DPO": (7.91, [6.75, 6.90, 9.30, 5.75, 7.35, 8.95, 9.40, 8.85]),
    "external reference model": (7.81, [5.20, 8.15, 9.40, 6.10, 6.80, 8.55, 9.35, 8.90]),
}


def add(name: str, *, subteam: object = None, baseline: bool = False) -> EvalResult:
    average, values = SCORES[name]
    result = EvalResult.objects.create(
        model_name=name,
        subteam=subteam,
        average=average,
        is_baseline=baseline,
        source="manual" if baseline else "import",
        **dict(zip(CATEGORIES, values, strict=True)),
    )
    return result


def row_order(body: str) -> list[str]:
    return re.findall(r'<tr id="result-\d+"[^>]*>\s*<td><a href="[^"]+">([^<]+)</a>', body)


@pytest.fixture
def board(team: Team) -> dict[str, EvalResult]:
    return {
        "dpo": add("8x8B DPO", subteam=team.sft),
        "ref": add("external reference model", baseline=True),
    }


# --- leaderboards ---------------------------------------------------------------------------------------


def test_the_leaderboard_sorts_by_average_and_marks_baselines(
    board: dict[str, EvalResult], team: Team
) -> None:
    body = team.client("member").get("/leaderboard/").content.decode()
    assert row_order(body) == ["8x8B DPO", "external reference model"]
    assert f'<tr id="result-{board["ref"].pk}" class="baseline">' in body
    assert 'aria-sort="descending"' in body


@pytest.mark.parametrize(
    ("sort", "first"),
    [
        ("-coding", "8x8B DPO"),
        ("-extraction", "external reference model"),
        ("extraction", "8x8B DPO"),
        ("model_name", "8x8B DPO"),
        ("-model_name", "external reference model"),
        ("-writing", "external reference model"),
        ("subteam", "8x8B DPO"),  # Fine-tuning first, the project's baseline (no subteam) last
        ("-subteam", "8x8B DPO"),  # empty values stay last either way
        ("source", "8x8B DPO"),  # import < manual
        ("-source", "external reference model"),
        ("'; DROP TABLE x", "8x8B DPO"),  # unknown: the default (average, best first)
    ],
)
def test_any_column_sorts(board: dict[str, EvalResult], team: Team, sort: str, first: str) -> None:
    body = team.client("member").get("/leaderboard/", {"sort": sort}).content.decode()
    assert row_order(body)[0] == first


def test_htmx_gets_only_the_table(board: dict[str, EvalResult], team: Team) -> None:
    response = team.client("member").get("/leaderboard/", {"sort": "-math"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="leaderboard"')
    assert "<html" not in body
    assert row_order(body)[0] == "external reference model"


def test_the_best_of_each_column_is_highlighted(board: dict[str, EvalResult], team: Team) -> None:
    body = team.client("member").get("/leaderboard/").content.decode()
    dpo_row = body.split(f'id="result-{board["dpo"].pk}"')[1].split("</tr>")[0]
    ref_row = body.split(f'id="result-{board["ref"].pk}"')[1].split("</tr>")[0]
    assert dpo_row.count("best") == 5  # average 7.91, coding, reasoning, roleplay, stem
    assert ref_row.count("best") == 4  # extraction, humanities, math, writing


def test_a_subteam_board_shows_its_results_and_the_project_baselines(
    board: dict[str, EvalResult], team: Team
) -> None:
    add("8x8B DPO", subteam=team.pretrain).__class__.objects.filter(subteam=team.pretrain).update(
        model_name="pretrain model"
    )
    sft = team.client("member").get("/leaderboard/sft/").content.decode()
    assert row_order(sft) == ["8x8B DPO", "external reference model"]
    pretrain = team.client("member").get("/leaderboard/pretrain/").content.decode()
    assert row_order(pretrain) == ["pretrain model", "external reference model"]
    assert team.client("member").get("/leaderboard/nope/").status_code == 404


def test_the_leaderboard_is_in_japanese_too(board: dict[str, EvalResult], team: Team) -> None:
    response = team.client("member", language="ja").get("/leaderboard/")
    assert response.status_code == 200
    assert 'lang="ja"' in response.content.decode()


def test_anonymous_users_are_sent_to_sign_in(board: dict[str, EvalResult], team: Team) -> None:
    for url in (
        "/leaderboard/",
        f"/evals/results/{board['dpo'].pk}/",
        "/evals/import/",
        "/evals/baselines/new/",
    ):
        response = team.client("anon").get(url)
        assert response.status_code == 302 and "/login" in response["Location"], url


@pytest.mark.parametrize("url", ["/leaderboard/", "/leaderboard/sft/"])
def test_the_leaderboard_runs_the_same_number_of_queries_for_1x_and_10x_rows(team: Team, url: str) -> None:
    client = team.client("admin")
    add("8x8B DPO", subteam=team.sft)
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for i in range(9):
        add(
            "external reference model",
            subteam=team.sft if i % 2 else team.pretrain,
            baseline=bool(i % 3 == 0),
        )
    with CaptureQueriesContext(connection) as ten:
        assert client.get(url).status_code == 200
    assert len(one) == len(ten), "\n".join(q["sql"][:160] for q in ten.captured_queries)


# --- a result's page ------------------------------------------------------------------------------------


def test_the_result_page_draws_a_radar_with_the_8_categories_against_the_baseline(
    board: dict[str, EvalResult], team: Team
) -> None:
    body = team.client("member").get(f"/evals/results/{board['dpo'].pk}/").content.decode()
    svg = body.split('<svg class="radar"')[1].split("</svg>")[0]
    assert [c for c in CATEGORIES if f'data-category="{c}"' in svg] == list(CATEGORIES)
    assert svg.count('<polygon class="model"') == 1
    assert svg.count('<polygon class="baseline"') == 1
    assert svg.count('<circle class="model"') == 8
    assert "external reference model" in svg
    assert "+0.10" in body  # average 7.91 vs 7.81


def test_the_comparison_can_be_chosen_or_left_out(board: dict[str, EvalResult], team: Team) -> None:
    client = team.client("member")
    ref = board["ref"]
    body = client.get(f"/evals/results/{ref.pk}/", {"compare": board["dpo"].pk}).content.decode()
    assert body.split('<svg class="radar"')[1].count('<polygon class="baseline"') == 1
    alone = client.get(f"/evals/results/{ref.pk}/", {"compare": "none"}, headers={"HX-Request": "true"})
    text = alone.content.decode()
    assert text.lstrip().startswith('<section id="comparison"')
    assert '<polygon class="baseline"' not in text


def test_the_result_page_lists_every_question_with_its_scores(team: Team) -> None:
    [result] = services.import_judgments(None, judgments_jsonl=JUDGMENTS_A, questions_jsonl=QUESTIONS_JSONL)
    client = team.client("member")
    client.get(result.get_absolute_url())
    with CaptureQueriesContext(connection) as queries:
        body = client.get(result.get_absolute_url()).content.decode()
    assert len(queries) <= 10
    q5 = body.split('id="q-5"')[1].split("</tr>")[0]
    assert "Roleplay" in q5 and "たぬきになって" in q5
    assert "score-failed" in q5  # the -1 of turn 2
    assert body.count('<tr id="q-') == 6


def test_a_result_that_does_not_exist_is_404(team: Team) -> None:
    assert team.client("member").get("/evals/results/999/").status_code == 404


# --- import ---------------------------------------------------------------------------------------------


def files(
    judgments: bytes = JUDGMENTS_AB, questions: bytes = QUESTIONS_JSONL
) -> dict[str, SimpleUploadedFile]:
    return {
        "judgments": SimpleUploadedFile("gpt-4_single.jsonl", judgments),
        "questions": SimpleUploadedFile("question.jsonl", questions),
    }


def test_a_member_imports_for_their_subteam(team: Team) -> None:
    goal = Goal.objects.create(title="g", subteam=team.sft, metric_name="jmt_bench.avg", metric_target=8.0)
    response = team.client("member").post("/evals/import/", {"subteam": team.sft.pk, **files()})
    assert response.status_code == 302
    assert set(EvalResult.objects.filter(subteam=team.sft).values_list("model_name", flat=True)) == {
        "model-a",
        "model-b",
    }
    goal.refresh_from_db()
    assert goal.metric_current == 6.25
    assert EvalResult.objects.get(model_name="model-a").created_by == team.member("member")


def test_an_import_with_errors_shows_them_and_records_nothing(team: Team) -> None:
    bad = jsonl([{"question_id": 1, "model": "m", "turn": 1}])
    response = team.client("member").post("/evals/import/", {"subteam": team.sft.pk, **files(judgments=bad)})
    assert response.status_code == 200
    assert "line 1: missing score" in response.content.decode()
    assert EvalResult.objects.count() == 0


@pytest.mark.parametrize(
    ("role", "subteam"),
    [("other", "sft"), ("member", "pretrain"), ("member", ""), ("lead", "")],
)
def test_an_import_outside_ones_subteams_is_refused(team: Team, role: str, subteam: str) -> None:
    pk = getattr(team, subteam).pk if subteam else ""
    response = team.client(role).post("/evals/import/", {"subteam": pk, **files()})
    assert response.status_code == 403
    assert EvalResult.objects.count() == 0


def test_an_admin_imports_for_the_whole_project(team: Team) -> None:
    response = team.client("admin").post(
        "/evals/import/", {"subteam": "", "model_name": "model-a", **files()}
    )
    assert response.status_code == 302
    result = EvalResult.objects.get()
    assert (result.subteam, result.model_name) == (None, "model-a")
    assert response["Location"] == result.get_absolute_url()


# --- baselines ------------------------------------------------------------------------------------------


def baseline_form(subteam: object = "") -> dict[str, object]:
    values = dict(zip(CATEGORIES, SCORES["external reference model"][1], strict=True))
    return {
        "model_name": "external reference model",
        "judge_model": "gpt-4",
        "average": 7.81,
        "subteam": subteam,
        **values,
    }


def test_an_admin_adds_a_project_baseline(team: Team) -> None:
    response = team.client("admin").post("/evals/baselines/new/", baseline_form())
    assert response.status_code == 302
    result = EvalResult.objects.get()
    assert (result.is_baseline, result.average, result.writing, result.subteam) == (True, 7.81, 8.9, None)


def test_a_lead_adds_a_baseline_for_their_subteam(team: Team) -> None:
    assert team.client("lead").get("/evals/baselines/new/").status_code == 200
    response = team.client("lead").post("/evals/baselines/new/", baseline_form(team.sft.pk))
    assert response.status_code == 302
    assert EvalResult.objects.get().subteam == team.sft


@pytest.mark.parametrize(
    ("role", "subteam"), [("member", "sft"), ("other", ""), ("lead", ""), ("lead", "pretrain")]
)
def test_a_baseline_from_anyone_else_is_refused(team: Team, role: str, subteam: str) -> None:
    pk = getattr(team, subteam).pk if subteam else ""
    response = team.client(role).post("/evals/baselines/new/", baseline_form(pk))
    assert response.status_code == 403
    assert EvalResult.objects.count() == 0


def test_the_baseline_form_checks_the_scores(team: Team) -> None:
    response = team.client("admin").post("/evals/baselines/new/", {**baseline_form(), "average": 11})
    assert response.status_code == 200
    assert EvalResult.objects.count() == 0


def test_the_forms_are_offered_to_those_who_may_use_them(board: dict[str, EvalResult], team: Team) -> None:
    member = team.client("member").get("/leaderboard/").content.decode()
    assert "/evals/import/" in member and "/evals/baselines/new/" not in member
    lead = team.client("lead").get("/leaderboard/").content.decode()
    assert "/evals/baselines/new/" in lead
    assert team.client("member").get("/evals/baselines/new/").status_code == 403


def test_model_names_and_judgments_are_escaped(team: Team) -> None:
    evil = "<script>alert(1)</script>"
    rows = jsonl([{"question_id": 1, "model": evil, "turn": 1, "score": 5, "judgment": evil}])
    [result] = services.import_judgments(None, judgments_jsonl=rows, questions_jsonl=QUESTIONS_JSONL)
    client = team.client("member")
    for url in ("/leaderboard/", result.get_absolute_url()):
        body = client.get(url).content.decode()
        assert evil not in body and "&lt;script&gt;" in body, url


def test_the_result_page_runs_the_same_number_of_queries_for_more_judgments_and_results(team: Team) -> None:
    client = team.client("member")
    [small] = services.import_judgments(
        None,
        judgments_jsonl=jsonl([{"question_id": 1, "model": "s", "turn": 1, "score": 5}]),
        questions_jsonl=QUESTIONS_JSONL,
    )
    client.get(small.get_absolute_url())
    with CaptureQueriesContext(connection) as one:
        client.get(small.get_absolute_url())
    [big] = services.import_judgments(None, judgments_jsonl=JUDGMENTS_A, questions_jsonl=QUESTIONS_JSONL)
    for _ in range(5):
        add("external reference model", baseline=True)
    with CaptureQueriesContext(connection) as many:
        client.get(big.get_absolute_url())
    assert len(one) == len(many), "\n".join(q["sql"][:160] for q in many.captured_queries)


def test_the_admin_lists_results_for_admins_only(board: dict[str, EvalResult], team: Team) -> None:
    assert team.client("admin").get("/admin/evals/evalresult/").status_code == 200
    assert team.client("admin").get(f"/admin/evals/evalresult/{board['dpo'].pk}/change/").status_code == 200
    assert team.client("lead").get("/admin/evals/evalresult/", follow=True).status_code == 403


def test_the_goal_page_shows_the_automatic_change_and_its_source(team: Team) -> None:
    goal = Goal.objects.create(
        title="g", subteam=team.sft, metric_name="jmt_bench.writing", metric_target=9.0
    )
    team.client("member").post("/evals/import/", {"subteam": team.sft.pk, "model_name": "model-a", **files()})
    result = EvalResult.objects.get()
    body = team.client("other").get(goal.get_absolute_url()).content.decode()
    assert "MT-Bench writing result of model-a (imported): 7.67" in body
    assert f"eval:{result.pk}" in body
