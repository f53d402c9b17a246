"""Reading FastChat's files: averages like training/evaluate.py, and errors that name the line."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from evals.models import CATEGORIES
from evals.parsing import parse_judgments, parse_questions, summarize
from tests.evals.conftest import EXPECTED_A, JUDGMENTS_A, QUESTIONS, QUESTIONS_JSONL, jsonl
from training.judge import CATEGORIES as TRAINING_CATEGORIES


def test_categories_are_the_ones_training_reports() -> None:
    assert CATEGORIES == TRAINING_CATEGORIES


def test_averages_match_the_hand_computed_values() -> None:
    questions = parse_questions(QUESTIONS_JSONL)
    summary = summarize(questions, parse_judgments(JUDGMENTS_A, questions))
    assert summary["average"] == EXPECTED_A["average"]
    assert summary["turn_averages"] == {"1": EXPECTED_A["turn1_average"], "2": EXPECTED_A["turn2_average"]}
    assert summary["category_averages"] == {c: EXPECTED_A[c] for c in CATEGORIES}
    assert summary["counts"] == {"judgments": 9, "scored": 8}


def test_a_rerun_line_replaces_the_earlier_one() -> None:
    rows = [
        {"question_id": 1, "model": "m", "turn": 1, "score": -1, "judgment": "$ERROR$ timeout"},
        {"question_id": 1, "model": "m", "turn": 1, "score": 9, "judgment": "[[9]]"},
    ]
    questions = parse_questions(QUESTIONS_JSONL)
    judgments = parse_judgments(jsonl(rows), questions)
    assert [(j.score, j.judgment) for j in judgments] == [(9.0, "[[9]]")]


def test_string_question_ids_are_kept_as_text() -> None:
    questions = parse_questions(jsonl([{"question_id": "q-1", "category": "stem", "turns": ["a"]}]))
    assert list(questions) == ["q-1"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"question_id": 1, "category": "math", "turns": ["a"]}\nnot json\n', "line 2: not JSON"),
        (b'{"question_id": 1, "turns": ["a"]}\n', "line 1: missing category"),
        (b'{"question_id": 1, "category": "math", "turns": []}\n', "line 1: turns must be a list of 1 or 2"),
        (b"[1, 2]\n", "line 1: not a JSON object"),
        (
            b'{"question_id": 1, "category": "math", "turns": ["a"]}\n'
            b'{"question_id": 1, "category": "math", "turns": ["b"]}\n',
            "line 2: question 1 appears twice",
        ),
        (b"\n\n", "holds no questions"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_bad_question_files_are_refused_with_the_line(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_questions(data)
    assert any(message in m for m in caught.value.messages), caught.value.messages


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"question_id": 1, "model": "m", "turn": 1}, "line 2: missing score"),
        ({"model": "m", "turn": 1, "score": 3}, "line 2: missing question_id"),
        ({"question_id": 99, "model": "m", "turn": 1, "score": 3}, "line 2: unknown question_id 99"),
        ({"question_id": 2, "model": "m", "turn": 2, "score": 3}, "line 2: question 2 has no turn 2"),
        ({"question_id": 1, "model": "m", "turn": 3, "score": 3}, "line 2: turn must be 1 or 2"),
        (
            {"question_id": 1, "model": "m", "turn": 1, "score": 11},
            "line 2: score must be a number from 0 to 10",
        ),
        ({"question_id": 1, "model": "m", "turn": 1, "score": "8"}, "line 2: score must be a number"),
        ({"question_id": 1, "model": "", "turn": 1, "score": 8}, "line 2: model must be a text"),
    ],
)
def test_bad_judgment_rows_are_refused_with_the_line(row: dict[str, object], message: str) -> None:
    good = {"question_id": 1, "model": "m", "turn": 1, "score": 8}
    with pytest.raises(ValidationError) as caught:
        parse_judgments(jsonl([good, row]), parse_questions(QUESTIONS_JSONL))
    assert any(message in m for m in caught.value.messages), caught.value.messages


def test_every_bad_line_is_reported_not_only_the_first() -> None:
    rows = [{"question_id": 90 + i, "model": "m", "turn": 1, "score": 1} for i in range(3)]
    with pytest.raises(ValidationError) as caught:
        parse_judgments(jsonl(rows), parse_questions(QUESTIONS_JSONL))
    assert len(caught.value.messages) == 3


def test_question_turns_are_kept_for_the_drill_down() -> None:
    questions = parse_questions(QUESTIONS_JSONL)
    assert questions["5"].turns == tuple(QUESTIONS[4]["turns"])  # type: ignore[arg-type]


def test_the_averages_equal_training_evaluates_own_summary() -> None:
    """The same rows through training/evaluate.py's summarize (what an eval job writes) and ours."""
    import json

    from tests.evals.conftest import JUDGMENTS_AB
    from training.evaluate import summarize as training_summarize

    rows = [json.loads(line) for line in JUDGMENTS_AB.decode().splitlines()]
    questions = parse_questions(QUESTIONS_JSONL)
    for model in ("model-a", "model-b"):
        theirs = training_summarize(QUESTIONS, [r for r in rows if r["model"] == model])
        ours = summarize(questions, [j for j in parse_judgments(JUDGMENTS_AB, questions) if j.model == model])
        for key in ("average", "turn_averages", "category_averages"):
            assert ours[key] == theirs[key], (model, key)
