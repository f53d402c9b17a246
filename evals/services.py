"""Every evaluation result enters through one of three doors here, and each moves the goals it meets.

- `record_from_job`: the scheduler's worker, when an eval job ends (it reads summary.json and the
  judgment file over SFTP and passes their bytes). Idempotent per job.
- `import_judgments`: FastChat judgment + question files from elsewhere (web form, API).
- `add_baseline`: a reference model's published scores, typed in by an admin or a lead.

Permissions are checked by the callers (`portal.access`). Results that are not baselines update the
matching goals (`update_goals`); every result landing writes an `EvalResultEvent` in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from evals.models import CATEGORIES, DEFAULT_BENCHMARK, EvalJudgment, EvalResult, EvalResultEvent
from evals.parsing import Judgment, Question, parse_judgments, parse_questions, summarize
from portal import services as portal_services
from portal.models import Goal, GoalRevision, Member, Subteam

if TYPE_CHECKING:
    from scheduler.models import Job

log = logging.getLogger("evals")

SCORE_FIELDS = ("average", *CATEGORIES, "turn1_average", "turn2_average")
# Goal revision reasons are data (kept as written, whatever the reader's language), not UI text.
ORIGIN_WORDS = {"job": "job", "import": "imported", "manual": "entered by hand"}


# --- boards -------------------------------------------------------------------------------------------------


def on_board(
    results: QuerySet[EvalResult], benchmark: str, subteam_id: int | None = None
) -> QuerySet[EvalResult]:
    """The results a leaderboard shows: the benchmark's, all of them on the project's board; on a
    subteam's, its results and the project's baselines."""
    shown = results.filter(benchmark=benchmark)
    if subteam_id is not None:
        shown = shown.filter(Q(subteam_id=subteam_id) | Q(subteam__isnull=True, is_baseline=True))
    return shown


# --- goals ----------------------------------------------------------------------------------------------


def _better(goal: Goal, value: float, current: float | None) -> bool:
    """Better in the goal's direction: higher for ≥ and >, lower for ≤ and <."""
    if current is None:
        return True
    if goal.metric_comparison in (Goal.Comparison.LTE, Goal.Comparison.LT):
        return value < current
    return value > current


def goal_source(result: EvalResult) -> str:
    return f"eval:{result.pk}"


def _reason(result: EvalResult, metric: str, value: float) -> str:
    """E.g. "MT-Bench result of 8x8B-DPO (job 1234): 7.91" (kept in the goal's history as data)."""
    part = metric.partition(".")[2]
    what = result.benchmark_label if part == "avg" else f"{result.benchmark_label} {part}"
    if result.job_id is not None and result.job is not None:
        origin = f"job {result.job.slurm_job_id or result.job_id}"
    else:
        origin = ORIGIN_WORDS[result.source]
    return f"{what} result of {result.model_name} ({origin}): {value:.2f}"


def update_goals(result: EvalResult) -> list[GoalRevision]:
    """Move the open goals this result measures: the result's subteam's and the project-wide ones.

    1. Goals whose metric_name is `<benchmark>.avg` or `<benchmark>.<category>`, open (on track or at
       risk), of the result's subteam or of no subteam, and started by the day of the result.
    2. The value is taken only when better than the goal's current value (a worse result never
       regresses it); the goal becomes achieved when the value meets the target.
    3. Each change is a `portal.services.update_goal` call with source `eval:<id>` and a reason naming
       the model, the job and the value.
    """
    if result.is_baseline:
        return []
    goals = Goal.objects.filter(
        Q(subteam__isnull=True) | Q(subteam_id=result.subteam_id),
        Q(start_date__isnull=True) | Q(start_date__lte=timezone.localdate(result.created_at)),
        metric_name__in=result.metric_names,
        status__in=[Goal.Status.ON_TRACK, Goal.Status.AT_RISK],
    ).order_by("pk")
    revisions = []
    for goal in goals:
        value = result.metric(goal.metric_name)
        if value is None or not _better(goal, value, goal.metric_current):
            continue
        changes: dict[str, Any] = {"metric_current": value}
        if goal.target_met(value):
            changes["status"] = Goal.Status.ACHIEVED
        revision = portal_services.update_goal(
            None,
            goal,
            changes,
            reason=_reason(result, goal.metric_name, value),
            source=goal_source(result),
        )
        if revision is not None:
            revisions.append(revision)
    return revisions


# --- common ---------------------------------------------------------------------------------------------


def _announce(result: EvalResult) -> None:
    """Record that the result landed (or was re-scored), in the transaction that stored it."""
    EvalResultEvent.objects.create(result=result, average=result.average)


def _score(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError({field: _("A score must be a number.")})
    if not 0 <= value <= 10:
        raise ValidationError({field: _("A score must be between 0 and 10.")})
    return float(value)


def _judgment_rows(
    result: EvalResult, judgments: Iterable[Judgment], questions: Mapping[str, Question] | None
) -> list[EvalJudgment]:
    rows = []
    for j in judgments:
        question = questions.get(j.question_id) if questions else None
        rows.append(
            EvalJudgment(
                result=result,
                question_id=j.question_id,
                category=question.category if question else "",
                turn=j.turn,
                score=j.score,
                question=question.turns[j.turn - 1] if question and j.turn <= len(question.turns) else "",
                judgment=j.judgment,
            )
        )
    return rows


def _replace_judgments(result: EvalResult, rows: list[EvalJudgment]) -> None:
    EvalJudgment.objects.filter(result=result).delete()
    EvalJudgment.objects.bulk_create(rows, batch_size=500)


def _apply_summary(result: EvalResult, summary: Mapping[str, Any]) -> None:
    """The scores of a summary.json (training/evaluate.py's format) onto the result's fields."""
    categories = summary.get("category_averages") or {}
    turns = summary.get("turn_averages") or {}
    if not isinstance(categories, Mapping) or not isinstance(turns, Mapping):
        raise ValidationError(_("summary.json: category_averages and turn_averages must be objects."))
    result.average = _score(summary.get("average"), "average")
    for category in CATEGORIES:
        setattr(result, category, _score(categories.get(category), category))
    result.turn1_average = _score(turns.get("1"), "turn1_average")
    result.turn2_average = _score(turns.get("2"), "turn2_average")


# --- the three doors ------------------------------------------------------------------------------------


def _section(summary: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = summary.get(name)
    return value if isinstance(value, Mapping) else {}


def _training_job(job: Job) -> Job | None:
    """The job that trained the evaluated model: the one named by the eval job's parameters
    (`trained_by_job`: its id), else the training job it runs after in a pipeline (whose output is
    the evaluated model)."""
    from scheduler.models import Job

    parameters = job.parameters if isinstance(job.parameters, dict) else {}
    ref = parameters.get("trained_by_job")
    if ref:
        try:
            return Job.objects.filter(pk=uuid.UUID(str(ref))).first()
        except ValueError:
            return None
    previous = job.depends_on
    if previous is None or previous.kind not in Job.Kind.kinds_that_train():
        return None
    model = ((parameters.get("config") or {}).get("model") or {}).get("name_or_path", "")
    output_dir = getattr(previous, "output_dir", "")
    if model and output_dir and not str(model).startswith(str(output_dir)):
        return None  # it runs after a training job but evaluates another model
    return previous


@transaction.atomic
def record_from_job(
    job: Job,
    summary: dict[str, Any],
    judgments_jsonl: bytes | None,
    questions_jsonl: bytes | None = None,
) -> EvalResult:
    """The result of an eval job, from its summary.json (parsed) and, when read, its judgment file and
    question file. A second call for the same job updates the result (and its judgments) in place."""
    if not isinstance(summary, Mapping):
        raise ValidationError(_("summary.json must hold a JSON object."))
    questions = parse_questions(questions_jsonl) if questions_jsonl else None
    model_name = str(summary.get("model_id") or job.name)[:200]
    judgments: list[Judgment] = []
    if judgments_jsonl:
        rows = parse_judgments(judgments_jsonl, questions)
        judgments = [j for j in rows if j.model == model_name] or rows
    judge, question_set, counts = (_section(summary, name) for name in ("judge", "question_set", "counts"))
    generation = summary.get("generation")

    result = EvalResult.objects.select_for_update().filter(job=job).first()
    if result is None:
        result = EvalResult(job=job, created_by=job.owner, source=EvalResult.Source.JOB)
    result.model_name = model_name
    result.subteam_id = job.subteam_id
    result.trained_by_job = _training_job(job)
    result.benchmark = str(summary.get("benchmark") or DEFAULT_BENCHMARK)[:50]
    result.question_set = str(question_set.get("name") or "")[:200]
    result.question_set_sha256 = str(question_set.get("sha256") or "")[:64]
    result.judge_model = str(judge.get("model") or (judgments[0].judge if judgments else ""))[:100]
    result.generation = dict(generation) if isinstance(generation, Mapping) else {}
    result.judgment_count = int(counts.get("judgments") or len(judgments))
    result.updated_at = timezone.now()
    _apply_summary(result, summary)
    result.full_clean(exclude=["job", "trained_by_job", "subteam", "created_by"])
    result.save()
    if judgments_jsonl is not None:
        _replace_judgments(result, _judgment_rows(result, judgments, questions))
    update_goals(result)
    _announce(result)
    return result


@transaction.atomic
def import_judgments(
    actor: Member | None,
    *,
    judgments_jsonl: bytes,
    questions_jsonl: bytes,
    subteam: Subteam | None = None,
    model_name: str | None = None,
    judge_model: str | None = None,
    question_set: str = "",
) -> list[EvalResult]:
    """One result per model in a FastChat judgment file, its categories from the question file.

    With `model_name`, only that model's judgments are imported. The judge is `judge_model`, else the
    first name in the rows' `judge` field. Nothing is recorded when either file is bad.

    Importing the same file again is idempotent: a result imported before for the same subteam, model,
    question file (its SHA-256) and judge is updated in place (its judgments replaced), not added as a
    second leaderboard row; its event is written again only when its scores changed.
    """
    questions = parse_questions(questions_jsonl)
    judgments = parse_judgments(judgments_jsonl, questions)
    by_model: dict[str, list[Judgment]] = {}
    for j in judgments:
        by_model.setdefault(j.model, []).append(j)
    if model_name:
        if model_name not in by_model:
            raise ValidationError(
                {
                    "model_name": _(
                        "The judgments file has no rows for the model “%(model)s” (it has: %(models)s)."
                    )
                    % {"model": model_name, "models": ", ".join(sorted(by_model))}
                }
            )
        by_model = {model_name: by_model[model_name]}
    digest = hashlib.sha256(questions_jsonl).hexdigest()
    results = []
    for name, rows in by_model.items():
        judge = (judge_model or next((j.judge for j in rows if j.judge), ""))[:100]
        result = _imported_before(subteam, name[:200], digest, judge) or EvalResult(
            model_name=name[:200],
            subteam=subteam,
            question_set_sha256=digest,
            judge_model=judge,
            source=EvalResult.Source.IMPORT,
            created_by=actor,
        )
        scores_before = _scores(result) if result.pk else None
        result.question_set = question_set[:200] or result.question_set
        result.judgment_count = len(rows)
        result.updated_at = timezone.now()
        _apply_summary(result, summarize(questions, rows))
        result.full_clean(exclude=["job", "trained_by_job", "subteam", "created_by"])
        result.save()
        _replace_judgments(result, _judgment_rows(result, rows, questions))
        update_goals(result)
        if _scores(result) != scores_before:
            _announce(result)
        results.append(result)
    return results


def _imported_before(subteam: Subteam | None, model_name: str, digest: str, judge: str) -> EvalResult | None:
    """The result an earlier import of the same model, question file and judge made for this subteam
    (locked while this import updates it)."""
    return (
        EvalResult.objects.select_for_update()
        .filter(
            source=EvalResult.Source.IMPORT,
            is_baseline=False,
            benchmark=DEFAULT_BENCHMARK,
            subteam=subteam,
            model_name=model_name,
            question_set_sha256=digest,
            judge_model=judge,
        )
        .order_by("pk")
        .first()
    )


def _scores(result: EvalResult) -> tuple[float | None, ...]:
    return tuple(getattr(result, name) for name in SCORE_FIELDS)


def _manual(
    actor: Member | None,
    *,
    is_baseline: bool,
    model_name: str,
    average: float | None,
    categories: Mapping[str, float | None],
    subteam: Subteam | None,
    notes: str,
    benchmark: str,
    judge_model: str,
    at: dt.datetime | None = None,
) -> EvalResult:
    unknown = sorted(set(categories) - set(CATEGORIES))
    if unknown:
        raise ValidationError(
            {"categories": _("Unknown categories: %(names)s.") % {"names": ", ".join(unknown)}}
        )
    result = EvalResult(
        model_name=model_name.strip(),
        subteam=subteam,
        benchmark=benchmark,
        judge_model=judge_model.strip(),
        source=EvalResult.Source.MANUAL,
        is_baseline=is_baseline,
        notes=notes.strip(),
        created_by=actor,
        average=_score(average, "average"),
        created_at=at or timezone.now(),
        updated_at=at or timezone.now(),
    )
    for category in CATEGORIES:
        setattr(result, category, _score(categories.get(category), category))
    result.full_clean(exclude=["job", "trained_by_job", "subteam", "created_by"])
    result.save()
    update_goals(result)
    _announce(result)
    return result


@transaction.atomic
def add_baseline(
    actor: Member | None,
    *,
    model_name: str,
    average: float | None,
    categories: Mapping[str, float | None],
    subteam: Subteam | None = None,
    notes: str = "",
    benchmark: str = DEFAULT_BENCHMARK,
    judge_model: str = "",
    at: dt.datetime | None = None,
) -> EvalResult:
    """A reference model's scores entered by hand (shown on the leaderboards; never moves a goal)."""
    return _manual(
        actor,
        is_baseline=True,
        model_name=model_name,
        average=average,
        categories=categories,
        subteam=subteam,
        notes=notes,
        benchmark=benchmark,
        judge_model=judge_model,
        at=at,
    )


@transaction.atomic
def add_result(
    actor: Member | None,
    *,
    model_name: str,
    average: float | None,
    categories: Mapping[str, float | None],
    subteam: Subteam | None = None,
    notes: str = "",
    benchmark: str = DEFAULT_BENCHMARK,
    judge_model: str = "",
    at: dt.datetime | None = None,
) -> EvalResult:
    """One of the team's results known only by its figures (no job, no files): it moves goals like any
    other result. `at`: when it was obtained, if not now."""
    return _manual(
        actor,
        is_baseline=False,
        model_name=model_name,
        average=average,
        categories=categories,
        subteam=subteam,
        notes=notes,
        benchmark=benchmark,
        judge_model=judge_model,
        at=at,
    )
