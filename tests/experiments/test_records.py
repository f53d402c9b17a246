"""A result that takes the top of a board or meets a goal's target (experiments.records): the records the
worker's step writes, the messages the outbox makes of them, their delivery to a local Slack Web API
server (exactly once), and the portal's partial."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from evals import services
from evals.models import EvalResult, EvalResultEvent
from experiments import records
from experiments.models import BoardCursor, BoardRecord
from portal.models import Goal, Member, Subteam
from scheduler.models import Cluster, Job
from slackbot import delivery, outbox
from slackbot.models import Notification
from tests.personas import Team
from tests.slackbot.fakeslack import FakeSlack
from tests.slackbot.helpers import make_cluster, make_job

pytestmark = pytest.mark.django_db

PROJECT, SUBTEAM, GOAL = (str(s) for s in BoardRecord.Scope)


@pytest.fixture
def cluster() -> Cluster:
    return make_cluster()


@pytest.fixture
def english(settings: Any) -> Any:
    """Channel messages use the portal's language; English here so the tests read the source strings."""
    settings.LANGUAGE_CODE = "en"
    settings.PORTAL_BASE_URL = "https://portal.example.org"
    return settings


@pytest.fixture
def fake_slack(english: Any) -> Iterator[FakeSlack]:
    """A local server speaking Slack's Web API (chat.postMessage), with the bot token set."""
    fake = FakeSlack().start()
    english.SLACK_BOT_TOKEN = "xoxb-test-token"
    english.SLACK_API_BASE_URL = fake.api_url
    yield fake
    fake.stop()


def train(team: Team, cluster: Cluster, name: str, role: str = "member", **training: Any) -> Job:
    """A finished SFT job with a training request."""
    request = {
        "kind": "sft",
        "model": "llm-jp-3-1.8b",
        "learning_rate": 1e-5,
        "num_train_epochs": 2,
        **training,
    }
    return make_job(
        team.member(role),
        team.sft,
        cluster,
        name=name,
        state=Job.State.COMPLETED,
        kind=Job.Kind.SFT,
        parameters={"training": request, "nodes": 1, "gpus_per_node": 8},
    )


def land(
    team: Team,
    cluster: Cluster,
    model: str,
    average: float,
    *,
    trained_by: Job | None = None,
    role: str = "member",
    subteam: Subteam | None = None,
    eval_job: Job | None = None,
) -> EvalResult:
    """An evaluation job's result, as the worker records it (goals moved, event written)."""
    job = eval_job or make_job(
        team.member(role),
        subteam or team.sft,
        cluster,
        name=f"eval-{model}",
        state=Job.State.COMPLETED,
        kind=Job.Kind.EVAL,
        parameters={"trained_by_job": str(trained_by.pk)} if trained_by else {},
    )
    summary = {"model_id": model, "average": average, "category_averages": {"coding": average}}
    return services.record_from_job(job, summary, None)


def baseline(name: str, average: float) -> EvalResult:
    return services.add_baseline(None, model_name=name, average=average, categories={})


def scopes(result: EvalResult) -> set[str]:
    return set(BoardRecord.objects.filter(result=result).values_list("scope", flat=True))


# --- the records ------------------------------------------------------------------------------------------------


def test_the_step_is_in_the_worker_cycle_and_needs_no_cluster(team: Team, cluster: Cluster) -> None:
    assert "experiments.records.check_results" in settings.SCHEDULER_STEPS
    result = land(team, cluster, "first", 7.0)
    records.check_results(None)
    assert scopes(result) == {PROJECT, SUBTEAM}  # the first result on both boards


def test_a_better_result_takes_both_boards_with_the_config_diff(team: Team, cluster: Cluster) -> None:
    baseline("reference", 6.9)
    old = land(team, cluster, "sft-a", 7.10, trained_by=train(team, cluster, "a"))
    assert records.check() == 2
    record = BoardRecord.objects.get(result=old, scope=PROJECT)
    assert record.previous is not None and record.previous.model_name == "reference"
    assert record.diff == []  # the baseline has no training job

    new = land(
        team,
        cluster,
        "sft-b",
        7.45,
        trained_by=train(team, cluster, "b", learning_rate=2e-5, num_train_epochs=3),
    )
    assert records.check() == 2
    for scope in (PROJECT, SUBTEAM):
        record = BoardRecord.objects.get(result=new, scope=scope)
        assert record.previous == old
        assert record.diff == [
            {"field": "learning_rate", "before": "1e-05", "after": "2e-05"},
            {"field": "num_train_epochs", "before": "2", "after": "3"},
        ]
        assert record.goal is None


def test_a_worse_or_equal_result_makes_no_record(team: Team, cluster: Cluster) -> None:
    best = land(team, cluster, "best", 7.45)
    records.check()
    worse = land(team, cluster, "worse", 7.2)
    tie = land(team, cluster, "tie", 7.45)  # strictly better only
    assert records.check() == 0
    assert scopes(worse) == scopes(tie) == set()
    assert scopes(best) == {PROJECT, SUBTEAM}


def test_a_baseline_makes_no_record_and_counts_on_the_board(team: Team, cluster: Cluster) -> None:
    reference = baseline("gpt-4o", 8.9)
    below = land(team, cluster, "below-the-baseline", 8.0)
    assert records.check() == 0
    assert not BoardRecord.objects.exists()
    above = land(team, cluster, "above", 9.1)
    records.check()
    assert (
        BoardRecord.objects.get(result=above, scope=SUBTEAM).previous == reference
    )  # the project's baselines
    assert scopes(reference) == scopes(below) == set()


def test_another_subteams_result_is_on_the_project_board_only(team: Team, cluster: Cluster) -> None:
    land(team, cluster, "pretrain-best", 8.0, role="other", subteam=team.pretrain)
    sft = land(team, cluster, "sft-best", 7.5)
    records.check()
    assert scopes(sft) == {SUBTEAM}  # not above the pretraining subteam's 8.0 on the project board


def test_a_rescored_result_makes_no_second_record(team: Team, cluster: Cluster) -> None:
    job = make_job(
        team.member("member"), team.sft, cluster, name="eval", state=Job.State.COMPLETED, kind=Job.Kind.EVAL
    )
    result = land(team, cluster, "m", 7.2, eval_job=job)
    records.check()
    assert BoardRecord.objects.count() == 2
    land(team, cluster, "m", 7.6, eval_job=job)  # the same job's summary read again, better
    assert EvalResultEvent.objects.filter(result=result).count() == 2
    assert records.check() == 0
    assert BoardRecord.objects.count() == 2


def test_an_outdated_score_is_skipped_for_the_current_one(team: Team, cluster: Cluster) -> None:
    baseline("reference", 7.3)
    job = make_job(
        team.member("member"), team.sft, cluster, name="eval", state=Job.State.COMPLETED, kind=Job.Kind.EVAL
    )
    land(team, cluster, "m", 7.0, eval_job=job)  # below the baseline…
    result = land(team, cluster, "m", 7.6, eval_job=job)  # …re-scored above it before the step ran
    assert records.check() == 2
    assert scopes(result) == {PROJECT, SUBTEAM}


def test_reading_the_events_again_is_harmless(team: Team, cluster: Cluster) -> None:
    land(team, cluster, "a", 7.0)
    land(team, cluster, "b", 7.5)  # both take the top at their moment
    assert records.check() == 4
    cursor = BoardCursor.objects.get(name=records.CURSOR)
    assert cursor.last_id == 0  # younger than SETTLE: read again next time
    assert records.check() == 0
    EvalResultEvent.objects.update(at=timezone.now() - records.SETTLE - dt.timedelta(seconds=1))
    assert records.check() == 0
    cursor.refresh_from_db()
    assert cursor.last_id == EvalResultEvent.objects.latest("pk").pk
    BoardCursor.objects.update(last_id=0)  # everything read once more
    assert records.check() == 0
    assert BoardRecord.objects.count() == 4


def test_results_recorded_before_the_step_existed_are_not_announced(team: Team, cluster: Cluster) -> None:
    land(team, cluster, "old", 7.0)
    EvalResultEvent.objects.update(at=timezone.now() - dt.timedelta(days=3))
    assert records.check() == 0
    new = land(team, cluster, "new", 7.5)
    assert records.check() == 2
    assert scopes(new) == {PROJECT, SUBTEAM}


def test_a_result_that_meets_a_goals_target(team: Team, cluster: Cluster) -> None:
    baseline("gpt-4o", 9.0)  # no board's top for these results
    goal = Goal.objects.create(
        title="MT-Bench 7.4", subteam=team.sft, metric_name="jmt_bench.avg", metric_target=7.4
    )
    project_goal = Goal.objects.create(title="Coding 8", metric_name="jmt_bench.coding", metric_target=8.0)
    first = land(team, cluster, "first", 7.2, trained_by=train(team, cluster, "a"))
    assert records.check() == 0  # the goal moves, not met yet
    second = land(team, cluster, "second", 7.45, trained_by=train(team, cluster, "b", num_train_epochs=3))
    assert records.check() == 1
    record = BoardRecord.objects.get()
    assert (record.result, record.scope, record.goal, record.previous) == (second, GOAL, goal, first)
    assert record.diff == [{"field": "num_train_epochs", "before": "2", "after": "3"}]
    assert records.values(record) == (7.2, 7.45)
    goal.refresh_from_db()
    assert goal.status == Goal.Status.ACHIEVED

    third = land(team, cluster, "third", 8.1)  # the project's coding goal (category averages: 8.1)
    records.check()
    record = BoardRecord.objects.get(result=third)
    assert (record.goal, record.previous) == (project_goal, second)
    assert records.values(record) == (7.45, 8.1)  # in the goal's metric
    assert not BoardRecord.objects.filter(result=third, goal=goal).exists()  # met already


# --- Slack ------------------------------------------------------------------------------------------------------


def link_slack(team: Team, role: str, slack_id: str) -> Member:
    Member.objects.filter(pk=team.member(role).pk).update(slack_user_id=slack_id)
    return Member.objects.get(pk=team.member(role).pk)


def test_the_channel_and_the_owner_are_told_exactly_once(
    team: Team, cluster: Cluster, fake_slack: FakeSlack
) -> None:
    link_slack(team, "member", "U0MEMBER")
    land(team, cluster, "sft-a", 7.10, trained_by=train(team, cluster, "a"))
    records.check()
    delivery.run_from_worker()  # sft-a, the first on the board, told
    fake_slack.messages.clear()

    eval_job = make_job(
        team.member("member"), team.sft, cluster, name="eval-b", state=Job.State.COMPLETED, kind=Job.Kind.EVAL,
        parameters={"trained_by_job": str(train(team, cluster, "b", learning_rate=2e-5).pk)},
    )  # fmt: skip
    result = land(team, cluster, "sft-b", 7.45, eval_job=eval_job)
    records.check_results(None)  # the worker's per-cluster step, then its once-a-cycle one
    delivery.run_from_worker()
    delivery.run_from_worker()
    land(team, cluster, "sft-b", 7.52, eval_job=eval_job)  # re-scored: nothing new to tell
    records.check_results(None)
    delivery.run_from_worker()

    # The top of the project's board and of the subteam's: one message each (the project's says it).
    told = [m for m in fake_slack.messages if not m["text"].startswith("Evaluation result landed")]
    assert sorted(m["channel"] for m in told) == ["#sft", "U0MEMBER"]
    channel = next(m for m in told if m["channel"] == "#sft")
    direct = next(m for m in told if m["channel"] == "U0MEMBER")
    assert channel["authorization"] == "Bearer xoxb-test-token"
    assert channel["text"].splitlines() == [
        "sft-b took the top of the project's MT-Bench board: 7.45 (owner <@U0MEMBER>)",
        "Previous best: sft-a, 7.10 → 7.45",
        "Changed: learning_rate 1e-05 → 2e-05",
        f"https://portal.example.org/evals/results/{result.pk}/",
    ]
    assert direct["text"].splitlines()[0] == "sft-b took the top of the project's MT-Bench board: 7.45"
    assert direct["text"].splitlines()[1:] == channel["text"].splitlines()[1:]
    assert Notification.objects.filter(event_key__startswith="board:", sent_at__isnull=False).count() == 4
    assert not Notification.objects.filter(sent_at__isnull=True).exists()


def test_the_subteam_board_alone_and_a_goal_are_told(team: Team, cluster: Cluster, english: Any) -> None:
    link_slack(team, "member", "U0MEMBER")
    land(team, cluster, "pretrain-best", 8.0, role="other", subteam=team.pretrain)
    goal = Goal.objects.create(
        title="MT-Bench 7.4", subteam=team.sft, metric_name="jmt_bench.avg", metric_target=7.4
    )
    result = land(team, cluster, "sft-best", 7.5)
    records.check()
    outbox.collect()
    texts = {n.event_key: n.text for n in Notification.objects.filter(event_key__startswith="board:")}
    subteam = BoardRecord.objects.get(result=result, scope=SUBTEAM)
    met = BoardRecord.objects.get(result=result, goal=goal)
    assert set(texts) == {f"board:{r.pk}:{who}" for r in (subteam, met) for who in ("channel", "owner")}
    assert texts[f"board:{subteam.pk}:channel"].startswith(
        "sft-best took the top of the Fine-tuning board for MT-Bench: 7.50 (owner <@U0MEMBER>)\n"
        "The first result on this board.\n"
    )
    assert texts[f"board:{met.pk}:owner"].startswith(
        "sft-best met the goal “MT-Bench 7.4”: jmt_bench.avg 7.50 (target ≥ 7.4)\n"
    )


def test_a_project_result_goes_to_its_owner_only(team: Team, cluster: Cluster, english: Any) -> None:
    link_slack(team, "lead", "U0LEAD")
    result = services.add_result(team.member("lead"), model_name="by-hand", average=7.7, categories={})
    records.check()
    assert scopes(result) == {PROJECT}
    outbox.collect()
    assert list(Notification.objects.values_list("channel", flat=True)) == ["U0LEAD"]


def test_no_slack_id_and_no_channel_tell_nobody(team: Team, cluster: Cluster, english: Any) -> None:
    land(team, cluster, "pretraining", 7.0, role="other", subteam=team.pretrain)  # no channel, no Slack ID
    records.check()
    assert BoardRecord.objects.count() == 2
    assert outbox.collect() == 0


def test_names_cannot_ping_the_channel(team: Team, cluster: Cluster, english: Any) -> None:
    land(team, cluster, "<!channel>", 7.0)
    records.check()
    outbox.collect()
    text = Notification.objects.get(event_key__startswith="board:").text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


# --- the portal -------------------------------------------------------------------------------------------------


def test_the_partial_lists_a_results_records(team: Team, cluster: Cluster) -> None:
    old = land(team, cluster, "sft-a", 7.10, trained_by=train(team, cluster, "a"))
    records.check()
    new = land(team, cluster, "sft-b", 7.45, trained_by=train(team, cluster, "b", learning_rate=2e-5))
    records.check()
    html = render_to_string("experiments/_board_records.html", {"board_records": records.shown(new)})
    assert html.count('class="board-record"') == 2
    assert "Top of the project board (MT-Bench)" in html
    assert "Top of the Fine-tuning board (MT-Bench)" in html
    assert f'previous best <a href="/evals/results/{old.pk}/">sft-a</a> (7.10 → 7.45)' in html
    assert "changed: <code>learning_rate</code> 1e-05 → 2e-05" in html
    first = render_to_string("experiments/_board_records.html", {"board_records": records.shown(old)})
    assert "the first result on this board (7.10)" in first
    worse = land(team, cluster, "sft-c", 7.0)
    records.check()
    assert (
        render_to_string("experiments/_board_records.html", {"board_records": records.shown(worse)}).strip()
        == ""
    )
