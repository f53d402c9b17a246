"""record_from_job, import_judgments, add_baseline, and the goals that move when a result lands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from evals import services
from evals.models import EvalJudgment, EvalResult, EvalResultEvent
from portal.models import Goal, GoalRevision
from scheduler.models import Job
from tests.evals.conftest import (
    EXPECTED_A,
    JUDGMENTS_A,
    JUDGMENTS_AB,
    QUESTIONS_JSONL,
    jsonl,
    judgment_rows,
    summary_for,
)
from tests.personas import Team

MakeJob = Callable[..., Job]


def goal(**fields: Any) -> Goal:
    values: dict[str, Any] = {
        "title": "Top score on Japanese MT-Bench",
        "metric_name": "jmt_bench.avg",
        "metric_comparison": ">=",
        "metric_target": 7.8,
        "metric_baseline": 3.12,
        "metric_current": 7.03,
    }
    values.update(fields)
    return Goal.objects.create(**values)


# --- record_from_job ------------------------------------------------------------------------------------


def test_a_job_result_carries_the_summary(team: Team, make_job: MakeJob) -> None:
    job = make_job()
    result = services.record_from_job(
        job, summary_for(), jsonl(judgment_rows("8x8b-dpo", {(1, 1): 8, (1, 2): 6})), QUESTIONS_JSONL
    )
    result.refresh_from_db()
    assert (result.model_name, result.job, result.subteam, result.source) == (
        "8x8b-dpo",
        job,
        team.sft,
        "job",
    )
    assert (result.average, result.writing, result.math, result.turn1_average) == (7.91, 8.85, 5.75, 8.1)
    assert result.judge_model == "gpt-4"
    assert (result.question_set, result.question_set_sha256) == ("japanese_mt_bench", "ab" * 32)
    assert result.generation["max_new_tokens"] == 1024
    assert result.judgment_count == 160
    assert result.created_by == team.member("member")
    assert list(result.judgments.values_list("question_id", "turn", "score", "category", "question")) == [
        ("1", 1, 8.0, "writing", "短い詩を書いて"),
        ("1", 2, 6.0, "writing", "もっと短く"),
    ]


def test_record_from_job_is_idempotent_per_job(team: Team, make_job: MakeJob) -> None:
    job = make_job()
    first = services.record_from_job(job, summary_for(average=7.5), JUDGMENTS_A, QUESTIONS_JSONL)
    again = services.record_from_job(job, summary_for(average=7.91), JUDGMENTS_A, QUESTIONS_JSONL)
    assert again.pk == first.pk
    assert EvalResult.objects.count() == 1
    assert EvalResult.objects.get().average == 7.91
    assert EvalJudgment.objects.count() == 9  # replaced, not doubled


def test_the_training_job_is_linked_when_the_eval_job_names_it(team: Team, make_job: MakeJob) -> None:
    trainer = make_job(name="dpo 8x8b")
    job = make_job(parameters={"trained_by_job": str(trainer.pk)})
    result = services.record_from_job(job, summary_for(), None)
    assert result.trained_by_job == trainer


def test_a_job_result_without_judgments_keeps_none(team: Team, make_job: MakeJob) -> None:
    result = services.record_from_job(make_job(), summary_for(), None)
    assert result.judgments.count() == 0
    assert result.average == 7.91


@pytest.mark.parametrize(
    "summary",
    [
        summary_for(average="high"),  # type: ignore[arg-type]
        summary_for(writing=12.0),
        {**summary_for(), "category_averages": [1, 2]},
    ],
)
def test_a_bad_summary_records_nothing(team: Team, make_job: MakeJob, summary: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        services.record_from_job(make_job(), summary, None)
    assert EvalResult.objects.count() == 0


# --- import_judgments -----------------------------------------------------------------------------------


def test_import_makes_one_result_per_model(team: Team) -> None:
    results = services.import_judgments(
        team.member("member"), judgments_jsonl=JUDGMENTS_AB, questions_jsonl=QUESTIONS_JSONL, subteam=team.sft
    )
    by_name = {r.model_name: r for r in results}
    assert set(by_name) == {"model-a", "model-b"}
    a = by_name["model-a"]
    for field, value in EXPECTED_A.items():
        assert getattr(a, field) == value, field
    assert (a.source, a.judge_model, a.judgment_count, a.subteam) == ("import", "gpt-4", 9, team.sft)
    assert len(a.question_set_sha256) == 64
    b = by_name["model-b"]
    assert (b.average, b.math, b.writing, b.turn2_average) == (6.25, 8.0, 4.5, 7.0)
    assert EvalJudgment.objects.filter(result=a).count() == 9


def test_import_of_one_model_and_another_judge(team: Team) -> None:
    [result] = services.import_judgments(
        None,
        judgments_jsonl=JUDGMENTS_AB,
        questions_jsonl=QUESTIONS_JSONL,
        model_name="model-b",
        judge_model="gpt-4o",
    )
    assert (result.model_name, result.judge_model, result.subteam) == ("model-b", "gpt-4o", None)


def test_import_of_a_model_not_in_the_file_is_refused(team: Team) -> None:
    with pytest.raises(ValidationError) as caught:
        services.import_judgments(
            None, judgments_jsonl=JUDGMENTS_AB, questions_jsonl=QUESTIONS_JSONL, model_name="nope"
        )
    assert "model-a, model-b" in str(caught.value.message_dict["model_name"])
    assert EvalResult.objects.count() == 0


def test_an_import_with_one_bad_line_records_nothing(team: Team) -> None:
    bad = JUDGMENTS_AB + jsonl([{"question_id": 77, "model": "model-a", "turn": 1, "score": 5}])
    with pytest.raises(ValidationError) as caught:
        services.import_judgments(None, judgments_jsonl=bad, questions_jsonl=QUESTIONS_JSONL)
    assert "line 14: unknown question_id 77" in caught.value.messages[0]
    assert EvalResult.objects.count() == 0
    assert EvalJudgment.objects.count() == 0


# --- add_baseline ---------------------------------------------------------------------------------------


def test_a_baseline_is_marked_and_moves_no_goal(team: Team) -> None:
    g = goal()
    result = services.add_baseline(
        team.member("admin"),
        model_name="external reference model",
        average=7.81,
        categories={"coding": 5.2, "writing": 8.9},
        notes="From the report (judge gpt-4).",
    )
    assert (result.is_baseline, result.source, result.average, result.coding, result.math) == (
        True,
        "manual",
        7.81,
        5.2,
        None,
    )
    g.refresh_from_db()
    assert g.metric_current == 7.03
    assert not GoalRevision.objects.filter(goal=g).exists()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"average": 10.5, "categories": {}}, "average"),
        ({"average": 7.0, "categories": {"poetry": 3.0}}, "categories"),
        ({"average": 7.0, "categories": {"math": -1.0}}, "math"),
        ({"average": 7.0, "categories": {}, "model_name": "  "}, "model_name"),
    ],
)
def test_a_bad_baseline_is_refused(team: Team, kwargs: dict[str, Any], field: str) -> None:
    kwargs.setdefault("model_name", "ref")
    with pytest.raises(ValidationError) as caught:
        services.add_baseline(None, **kwargs)
    assert field in caught.value.message_dict
    assert EvalResult.objects.count() == 0


# --- goals ----------------------------------------------------------------------------------------------


def test_a_better_result_moves_the_goal_and_says_where_from(team: Team, make_job: MakeJob) -> None:
    g = goal(metric_target=8.0)
    result = services.record_from_job(make_job(), summary_for(), None)
    g.refresh_from_db()
    assert (g.metric_current, g.status) == (7.91, Goal.Status.ON_TRACK)
    revision = g.revisions.get()
    assert revision.source == f"eval:{result.pk}"
    assert revision.reason == "MT-Bench result of 8x8b-dpo (job 4242): 7.91"
    assert revision.changes == {"metric_current": [7.03, 7.91]}
    assert revision.author is None


def test_meeting_the_target_achieves_the_goal(team: Team, make_job: MakeJob) -> None:
    g = goal(subteam=team.sft)
    services.record_from_job(make_job(), summary_for(), None)
    g.refresh_from_db()
    assert (g.metric_current, g.status) == (7.91, Goal.Status.ACHIEVED)
    assert g.revisions.get().changes["status"] == ["on_track", "achieved"]


def test_a_category_goal_reads_its_category(team: Team, make_job: MakeJob) -> None:
    g = goal(title="Writing", metric_name="jmt_bench.writing", metric_target=9.0, metric_current=8.0)
    services.record_from_job(make_job(), summary_for(), None)
    g.refresh_from_db()
    assert g.metric_current == 8.85
    assert g.revisions.get().reason == "MT-Bench writing result of 8x8b-dpo (job 4242): 8.85"


def test_a_worse_result_does_not_regress_the_goal(team: Team, make_job: MakeJob) -> None:
    g = goal(metric_current=7.5)
    services.record_from_job(make_job(), summary_for(average=7.2), None)
    g.refresh_from_db()
    assert g.metric_current == 7.5
    assert not g.revisions.exists()


def test_lower_is_better_for_a_less_than_goal(team: Team, make_job: MakeJob) -> None:
    g = goal(metric_name="jmt_bench.math", metric_comparison="<=", metric_target=5.0, metric_current=6.0)
    services.record_from_job(make_job(), summary_for(math=4.5), None)
    g.refresh_from_db()
    assert (g.metric_current, g.status) == (4.5, Goal.Status.ACHIEVED)


@pytest.mark.parametrize("status", [Goal.Status.ACHIEVED, Goal.Status.DROPPED])
def test_achieved_and_dropped_goals_are_left_alone(team: Team, make_job: MakeJob, status: str) -> None:
    g = goal(status=status)
    services.record_from_job(make_job(), summary_for(average=9.5), None)
    g.refresh_from_db()
    assert (g.metric_current, g.status) == (7.03, status)
    assert not g.revisions.exists()


def test_only_the_results_subteam_and_the_project_are_moved(team: Team, make_job: MakeJob) -> None:
    mine = goal(subteam=team.sft, metric_target=9.0)
    project = goal(metric_target=9.0)
    theirs = goal(subteam=team.pretrain, metric_target=9.0)
    other_metric = goal(metric_name="code.pass_at_1", metric_target=0.5, metric_current=0.1)
    services.record_from_job(make_job(subteam=team.sft), summary_for(), None)
    assert Goal.objects.get(pk=mine.pk).metric_current == 7.91
    assert Goal.objects.get(pk=project.pk).metric_current == 7.91
    assert Goal.objects.get(pk=theirs.pk).metric_current == 7.03
    assert Goal.objects.get(pk=other_metric.pk).metric_current == 0.1


def test_a_project_wide_import_moves_only_project_wide_goals(team: Team) -> None:
    mine = goal(subteam=team.sft, metric_current=1.0)
    project = goal(metric_current=1.0)
    [result] = services.import_judgments(None, judgments_jsonl=JUDGMENTS_A, questions_jsonl=QUESTIONS_JSONL)
    assert Goal.objects.get(pk=mine.pk).metric_current == 1.0
    assert Goal.objects.get(pk=project.pk).metric_current == 6.25
    revision = project.revisions.get()
    assert (revision.reason, revision.source) == (
        "MT-Bench result of model-a (imported): 6.25",
        f"eval:{result.pk}",
    )


def test_a_goal_with_no_current_value_takes_the_first_result(team: Team, make_job: MakeJob) -> None:
    g = goal(metric_current=None, metric_target=9.0)
    services.record_from_job(make_job(), summary_for(), None)
    g.refresh_from_db()
    assert g.metric_current == 7.91


@pytest.mark.django_db
def test_a_result_landing_writes_its_event_in_the_same_transaction() -> None:
    result = services.add_baseline(None, model_name="ref", average=7.0, categories={})
    assert list(result.events.values_list("average", flat=True)) == [7.0]
    with pytest.raises(RuntimeError), transaction.atomic():
        services.add_baseline(None, model_name="ref-2", average=6.0, categories={})
        raise RuntimeError("rolled back")
    assert EvalResultEvent.objects.count() == 1  # the rolled-back result left no event either


def test_a_result_entered_by_hand_moves_goals(team: Team) -> None:
    g = goal(subteam=team.sft, metric_current=None)
    result = services.add_result(
        team.member("lead"), model_name="8B full SFT + DPO", average=7.03, categories={}, subteam=team.sft
    )
    g.refresh_from_db()
    assert (result.is_baseline, g.metric_current) == (False, 7.03)
    assert g.revisions.get().reason == "MT-Bench result of 8B full SFT + DPO (entered by hand): 7.03"


def test_a_goal_not_started_by_the_day_of_the_result_is_left_alone(team: Team) -> None:
    import datetime as dt

    from django.utils import timezone

    g = goal(
        subteam=team.sft, metric_current=None, start_date=dt.date(2024, 7, 20), due_date=dt.date(2024, 8, 9)
    )
    at = timezone.make_aware(dt.datetime(2024, 7, 12, 21, 0))
    services.add_result(None, model_name="8B", average=7.03, categories={}, subteam=team.sft, at=at)
    g.refresh_from_db()
    assert g.metric_current is None
    services.add_result(None, model_name="8x8B", average=7.5, categories={}, subteam=team.sft)
    g.refresh_from_db()
    assert g.metric_current == 7.5


def test_the_training_job_of_a_pipeline_is_the_one_the_eval_runs_after(team: Team, make_job: MakeJob) -> None:
    trainer = make_job(name="dpo 8x8b", kind="dpo")
    output_dir = f"{trainer.run_dir}/out"
    job = make_job(depends_on=trainer, parameters={"config": {"model": {"name_or_path": output_dir}}})
    assert services.record_from_job(job, summary_for(), None).trained_by_job == trainer
    other = make_job(
        depends_on=trainer, parameters={"config": {"model": {"name_or_path": "/models/elsewhere"}}}
    )
    custom = make_job(depends_on=make_job(name="prep"))
    assert services.record_from_job(other, summary_for(), None).trained_by_job is None
    assert services.record_from_job(custom, summary_for(), None).trained_by_job is None
