"""Job, reservation and evaluation events land in the outbox; delivery posts them to a local server
that speaks Slack's Web API, retrying with backoff."""

from __future__ import annotations

import datetime as dt
import logging
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from scheduler import hooks
from scheduler.models import Job
from slackbot import delivery, notify
from slackbot.models import Notification
from tests.personas import Team
from tests.slackbot.fakeslack import FakeSlack, Scripted
from tests.slackbot.helpers import make_cluster, make_job

pytestmark = pytest.mark.django_db

CaptureOnCommit = Callable[..., Any]


@pytest.fixture
def english(slack_settings: Any) -> Any:
    """Channel messages use the portal's language; English here so the tests read the source strings."""
    slack_settings.LANGUAGE_CODE = "en"
    return slack_settings


def end_job(job: Job, state: str, capture: CaptureOnCommit, exit_code: int | None = None) -> None:
    """What the worker does: change the state in a transaction and announce it after the commit."""
    with capture(execute=True), transaction.atomic():
        old = job.state
        job.state = state
        job.exit_code = exit_code
        job.ended_at = timezone.now()
        job.save(update_fields=["state", "exit_code", "ended_at"])
        hooks.state_changed(job, old, state)


# --- jobs -----------------------------------------------------------------------------------------------------


def test_a_failed_job_creates_exactly_one_notification(
    team: Team, english: Any, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), name="dpo-beta-0.1")
    end_job(job, Job.State.FAILED, django_capture_on_commit_callbacks, exit_code=3)
    notification = Notification.objects.get()
    assert notification.channel == "#sft"
    assert notification.event_key == f"job:{job.pk}:failed"
    assert notification.text.startswith("Job dpo-beta-0.1 ended: Failed (exit code 3, ran 0:12:0")
    assert "owner Member)" in notification.text
    assert notification.text.endswith(f"\nhttps://portal.example.org/jobs/{job.pk}/")
    assert notification.blocks[0]["text"]["text"] == notification.text
    assert notification.sent_at is None and notification.attempts == 0

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        hooks.state_changed(job, Job.State.RUNNING, Job.State.FAILED)  # the same event announced again
    assert Notification.objects.count() == 1


def test_a_completed_job_is_announced_as_finished(
    team: Team, english: Any, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), name="sft")
    end_job(job, Job.State.COMPLETED, django_capture_on_commit_callbacks, exit_code=0)
    assert Notification.objects.get().text.startswith("Job sft finished: Completed (exit code 0,")


def test_live_states_are_not_announced(
    team: Team, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), state=Job.State.PENDING)
    end_job(job, Job.State.RUNNING, django_capture_on_commit_callbacks)
    assert not Notification.objects.exists()


def test_a_subteam_without_a_channel_gets_nothing(
    team: Team, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    job = make_job(team.member("other"), team.pretrain, make_cluster())
    end_job(job, Job.State.FAILED, django_capture_on_commit_callbacks, exit_code=1)
    assert not Notification.objects.exists()


def test_a_rolled_back_state_change_announces_nothing(
    team: Team, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster())
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        hooks.state_changed(job, Job.State.RUNNING, Job.State.FAILED)
        raise RuntimeError("the worker's transaction failed")
    assert not Notification.objects.exists()


def test_the_receiver_is_connected_and_the_delivery_is_a_loop_hook() -> None:
    refs = [entry[1] for entry in hooks.job_state_changed.receivers]
    receivers = [ref() if isinstance(ref, weakref.ReferenceType) else ref for ref in refs]
    assert notify.on_job_state_changed in receivers
    assert hooks.loop_hooks.count(delivery.run_from_worker) == 1


# --- evaluation results ----------------------------------------------------------------------------------------


def test_an_eval_result_is_announced_once_per_score(
    team: Team, english: Any, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    from evals.models import EvalResult
    from evals.signals import eval_result_landed

    result = EvalResult.objects.create(
        model_name="8x8B-dpo", subteam=team.sft, average=7.91, judge_model="gpt-4"
    )
    for _ in range(2):
        eval_result_landed.send(sender=EvalResult, result=result)
    notification = Notification.objects.get()
    assert notification.text.startswith("Evaluation result landed: 8x8B-dpo, ")
    assert "average 7.91 (judge gpt-4)" in notification.text
    assert f"https://portal.example.org/evals/results/{result.pk}/" in notification.text
    baseline = EvalResult.objects.create(
        model_name="reference", subteam=team.sft, average=7.81, is_baseline=True
    )
    eval_result_landed.send(sender=EvalResult, result=baseline)
    assert Notification.objects.count() == 1


# --- delivery -------------------------------------------------------------------------------------------------


def queue(n: int = 1) -> list[Notification]:
    for i in range(n):
        notify.enqueue(
            "#sft",
            f"test:{i}",
            f"message {i}",
            [{"type": "section", "text": {"type": "mrkdwn", "text": f"message {i}"}}],
        )
    return list(Notification.objects.order_by("pk"))


def make_due(notification: Notification) -> None:
    Notification.objects.filter(pk=notification.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def test_delivery_posts_with_the_bot_token(slack_settings: Any, fake_slack: FakeSlack) -> None:
    (notification,) = queue()
    assert delivery.deliver_pending() == 1
    (message,) = fake_slack.messages
    assert message["channel"] == "#sft" and message["text"] == "message 0"
    assert message["blocks"][0]["text"]["text"] == "message 0"
    assert message["authorization"] == "Bearer xoxb-test-token"
    notification.refresh_from_db()
    assert notification.sent_at is not None and notification.message_ts == "1700000000.000001"
    assert notification.attempts == 1 and notification.last_error == ""
    assert delivery.deliver_pending() == 0  # nothing is posted twice
    assert len(fake_slack.messages) == 1


def test_delivery_retries_after_a_server_error_and_succeeds(
    slack_settings: Any, fake_slack: FakeSlack
) -> None:
    (notification,) = queue()
    fake_slack.script.append(Scripted(500, None))
    before = timezone.now()
    assert delivery.deliver_pending() == 0
    notification.refresh_from_db()
    assert notification.attempts == 1 and notification.sent_at is None and notification.gave_up_at is None
    assert notification.last_error.startswith("HTTP 500")
    assert notification.next_attempt_at >= before + dt.timedelta(seconds=30)
    assert delivery.deliver_pending() == 0  # not due yet
    assert len(fake_slack.messages) == 1

    make_due(notification)
    assert delivery.deliver_pending() == 1
    notification.refresh_from_db()
    assert notification.sent_at is not None and notification.attempts == 2 and notification.last_error == ""
    assert len(fake_slack.messages) == 2


def test_backoff_doubles_up_to_an_hour() -> None:
    assert [delivery.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
    assert delivery.backoff(30).total_seconds() == 3600


def test_a_rate_limit_waits_as_long_as_slack_asks(slack_settings: Any, fake_slack: FakeSlack) -> None:
    (notification,) = queue()
    fake_slack.script.append(Scripted(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "600"}))
    before = timezone.now()
    assert delivery.deliver_pending() == 0
    notification.refresh_from_db()
    assert notification.last_error == "HTTP 429: ratelimited" and notification.gave_up_at is None
    assert notification.next_attempt_at >= before + dt.timedelta(seconds=600)


def test_an_unknown_channel_is_given_up_at_once(slack_settings: Any, fake_slack: FakeSlack) -> None:
    (notification,) = queue()
    fake_slack.script.append(Scripted(200, {"ok": False, "error": "channel_not_found"}))
    assert delivery.deliver_pending() == 0
    notification.refresh_from_db()
    assert notification.gave_up_at is not None and notification.last_error == "channel_not_found"
    make_due(notification)
    assert delivery.deliver_pending() == 0
    assert len(fake_slack.messages) == 1


def test_it_gives_up_after_the_last_attempt_and_keeps_the_error(
    slack_settings: Any, fake_slack: FakeSlack
) -> None:
    slack_settings.SLACK_MAX_ATTEMPTS = 2
    (notification,) = queue()
    fake_slack.script += [Scripted(500, None), Scripted(503, None)]
    delivery.deliver_pending()
    make_due(notification)
    delivery.deliver_pending()
    notification.refresh_from_db()
    assert notification.attempts == 2 and notification.gave_up_at is not None and notification.sent_at is None
    assert notification.last_error.startswith("HTTP 503")
    make_due(notification)
    assert delivery.deliver_pending() == 0
    assert len(fake_slack.messages) == 2


def test_an_unreachable_api_is_retried(slack_settings: Any, fake_slack: FakeSlack) -> None:
    (notification,) = queue()
    fake_slack.stop()  # the port is closed now
    assert delivery.deliver_pending() == 0
    notification.refresh_from_db()
    assert notification.attempts == 1 and notification.gave_up_at is None and notification.last_error


def test_without_a_token_notifications_wait_and_the_log_says_so_once(
    slack_settings: Any,
    fake_slack: FakeSlack,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(delivery, "_warned_no_token", False)
    slack_settings.SLACK_BOT_TOKEN = ""
    (notification,) = queue()
    with caplog.at_level(logging.WARNING, logger="slackbot"):
        assert delivery.deliver_pending() == 0
        assert delivery.deliver_pending() == 0
    assert caplog.text.count("SLACK_BOT_TOKEN is not set") == 1
    notification.refresh_from_db()
    assert notification.is_pending and notification.attempts == 0
    assert fake_slack.messages == []


def test_delivery_takes_at_most_the_limit_oldest_first(slack_settings: Any, fake_slack: FakeSlack) -> None:
    queue(3)
    assert delivery.deliver_pending(limit=2) == 2
    assert [m["text"] for m in fake_slack.messages] == ["message 0", "message 1"]
    assert delivery.deliver_pending(limit=2) == 1


def test_a_row_claimed_by_another_worker_is_left_alone(slack_settings: Any, fake_slack: FakeSlack) -> None:
    (notification,) = queue()
    # Another worker claimed it a moment ago: its lease pushed next_attempt_at into the future.
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now() + delivery.LEASE)
    assert delivery.deliver_pending() == 0
    assert fake_slack.messages == []


def test_the_management_command_and_the_worker_hook_deliver(
    slack_settings: Any, fake_slack: FakeSlack
) -> None:
    from io import StringIO

    queue(2)
    out = StringIO()
    call_command("deliver_notifications", "--limit", "1", stdout=out)
    assert out.getvalue().strip() == "1 sent"
    hooks.run_loop_hooks()
    assert len(fake_slack.messages) == 2
    assert not Notification.objects.filter(sent_at__isnull=True).exists()


# --- admin ----------------------------------------------------------------------------------------------------


def test_the_admin_lists_the_outbox_and_warns_without_a_token(team: Team, slack_settings: Any) -> None:
    slack_settings.SLACK_BOT_TOKEN = ""
    queue()
    response = team.client("admin").get("/admin/slackbot/notification/")
    assert response.status_code == 200
    assert b"SLACK_BOT_TOKEN is not set" in response.content and b"message 0" in response.content
    assert team.client("member").get("/admin/slackbot/notification/").status_code in (302, 403)


def test_names_cannot_ping_the_channel(
    team: Team, english: Any, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), name="<!channel> & co")
    end_job(job, Job.State.FAILED, django_capture_on_commit_callbacks, exit_code=1)
    assert Notification.objects.get().text.startswith("Job &lt;!channel&gt; &amp; co ended:")


def test_a_job_cancelled_through_the_scheduler_service_is_announced(
    team: Team, english: Any, django_capture_on_commit_callbacks: CaptureOnCommit
) -> None:
    from scheduler.services import cancel_job

    job = make_job(team.member("member"), team.sft, make_cluster(), name="queued", state=Job.State.SUBMITTING)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_job(team.member("member"), job)
    notification = Notification.objects.get()
    assert notification.event_key == f"job:{job.pk}:cancelled"
    assert notification.text.startswith("Job queued ended: Cancelled (exit code –, ran –,")
