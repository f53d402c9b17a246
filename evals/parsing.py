"""Reading FastChat's llm_judge files (question.jsonl, model_judgment/*_single.jsonl): pure functions.

Bad input raises a Django ValidationError whose messages name the file and the line, so the import
form and the API can show them as they are.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from evals.models import CATEGORIES

MAX_ERRORS = 20  # a wrong file would otherwise list every line


@dataclasses.dataclass(frozen=True)
class Question:
    question_id: str
    category: str
    turns: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Judgment:
    question_id: str
    model: str
    turn: int
    score: float
    judge: str
    judgment: str
    line: int


def _decode(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            _("%(file)s is not UTF-8 text (byte %(at)d).") % {"file": what, "at": exc.start}
        ) from exc


def _rows(data: bytes, what: str, errors: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; lines that are not a JSON object go to errors."""
    for number, line in enumerate(_decode(data, what).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(
                _("%(file)s, line %(line)d: not JSON (%(error)s).")
                % {"file": what, "line": number, "error": exc.msg}
            )
            continue
        if not isinstance(row, dict):
            errors.append(_("%(file)s, line %(line)d: not a JSON object.") % {"file": what, "line": number})
            continue
        yield number, row


def _raise(errors: list[str]) -> None:
    if errors:
        shown = errors[:MAX_ERRORS]
        if len(errors) > MAX_ERRORS:
            shown.append(_("… and %(n)d more errors.") % {"n": len(errors) - MAX_ERRORS})
        raise ValidationError(shown)


def _missing(row: dict[str, Any], fields: Iterable[str]) -> list[str]:
    return [f for f in fields if f not in row]


def _question_id(value: Any) -> str | None:
    """Question ids are ints in MT-Bench and strings elsewhere; both are kept as text."""
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
        return None
    return str(value)


def parse_questions(data: bytes) -> dict[str, Question]:
    """question_id -> Question, from a FastChat question.jsonl (question_id, category, turns)."""
    what = _("The questions file")
    errors: list[str] = []
    questions: dict[str, Question] = {}
    for number, row in _rows(data, what, errors):
        where = {"file": what, "line": number}
        missing = _missing(row, ("question_id", "category", "turns"))
        if missing:
            errors.append(
                _("%(file)s, line %(line)d: missing %(fields)s.") % {**where, "fields": ", ".join(missing)}
            )
            continue
        qid = _question_id(row["question_id"])
        turns = row["turns"]
        if qid is None:
            errors.append(_("%(file)s, line %(line)d: question_id must be a number or a text.") % where)
        elif not isinstance(row["category"], str) or not row["category"]:
            errors.append(_("%(file)s, line %(line)d: category must be a text.") % where)
        elif (
            not isinstance(turns, list)
            or not 1 <= len(turns) <= 2
            or not all(isinstance(t, str) for t in turns)
        ):
            errors.append(_("%(file)s, line %(line)d: turns must be a list of 1 or 2 texts.") % where)
        elif qid in questions:
            errors.append(_("%(file)s, line %(line)d: question %(id)s appears twice.") % {**where, "id": qid})
        else:
            questions[qid] = Question(qid, row["category"], tuple(turns))
    if not errors and not questions:
        errors.append(_("%(file)s holds no questions.") % {"file": what})
    _raise(errors)
    return questions


def parse_judgments(data: bytes, questions: dict[str, Question] | None = None) -> list[Judgment]:
    """Rows of a FastChat single-answer judgment file; with `questions`, each row's question must exist
    and have the turn. A (model, question, turn) written twice (a rerun) keeps the later line."""
    what = _("The judgments file")
    errors: list[str] = []
    kept: dict[tuple[str, str, int], Judgment] = {}
    for number, row in _rows(data, what, errors):
        where = {"file": what, "line": number}
        missing = _missing(row, ("question_id", "model", "turn", "score"))
        if missing:
            errors.append(
                _("%(file)s, line %(line)d: missing %(fields)s.") % {**where, "fields": ", ".join(missing)}
            )
            continue
        qid = _question_id(row["question_id"])
        turn, score, model = row["turn"], row["score"], row["model"]
        if qid is None:
            errors.append(_("%(file)s, line %(line)d: question_id must be a number or a text.") % where)
        elif not isinstance(model, str) or not model:
            errors.append(_("%(file)s, line %(line)d: model must be a text.") % where)
        elif isinstance(turn, bool) or turn not in (1, 2):
            errors.append(_("%(file)s, line %(line)d: turn must be 1 or 2.") % where)
        elif (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not (score == -1 or 0 <= score <= 10)
        ):
            errors.append(_("%(file)s, line %(line)d: score must be a number from 0 to 10, or -1.") % where)
        elif questions is not None and qid not in questions:
            errors.append(
                _("%(file)s, line %(line)d: unknown question_id %(id)s (not in the questions file).")
                % {**where, "id": qid}
            )
        elif questions is not None and turn > len(questions[qid].turns):
            errors.append(
                _("%(file)s, line %(line)d: question %(id)s has no turn %(turn)d.")
                % {**where, "id": qid, "turn": turn}
            )
        else:
            judge = row.get("judge")
            judge_model = judge[0] if isinstance(judge, list) and judge and isinstance(judge[0], str) else ""
            text = row.get("judgment")
            kept[(model, qid, turn)] = Judgment(
                qid, model, turn, float(score), judge_model, text if isinstance(text, str) else "", number
            )
    if not errors and not kept:
        errors.append(_("%(file)s holds no judgments.") % {"file": what})
    _raise(errors)
    return sorted(kept.values(), key=lambda j: j.line)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def summarize(questions: dict[str, Question], judgments: list[Judgment]) -> dict[str, Any]:
    """Averages as training/evaluate.py computes them: -1 scores left out, a category without questions
    (or without a scored judgment) is null, 4 decimals."""
    scored = [j for j in judgments if j.score != -1]
    return {
        "average": _mean([j.score for j in scored]),
        "turn_averages": {str(t): _mean([j.score for j in scored if j.turn == t]) for t in (1, 2)},
        "category_averages": {
            c: _mean([j.score for j in scored if questions[j.question_id].category == c]) for c in CATEGORIES
        },
        "counts": {"judgments": len(judgments), "scored": len(scored)},
    }
