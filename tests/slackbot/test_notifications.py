"""Job, reservation and evaluation events land in the outbox; delivery posts them to a local server
that speaks Slack's Web API, retrying with backoff."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from scheduler.models import Job, JobEvent
from scheduler.transitions import transition
from slackbot import delivery, notify, outbox
from slackbot.models import Notification, OutboxCursor
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


def end_job(job: Job, state: str, exit_code: int | None = None) -> None:
    """What the worker does: the state change and its event row, in one transaction."""
    assert transition(
        job,
        state,
        expect_from=job.state,
        exit_code=exit_code,
        ended_at=timezone.now(),
    )


# --- jobs -----------------------------------------------------------------------------------------------------


def test_a_failed_job_creates_exactly_one_notification(team: Team, english: Any) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), name="dpo-beta-0.1")
    end_job(job, Job.State.FAILED, exit_code=3)
    assert not Notification.objects.exists()  # the event row is the outbox: read by the worker's step
    assert outbox.collect() == 1
    notification = Notification.objects.get()
    assert notification.channel == "#sft"
    assert notification.event_key == f"job:{job.pk}:failed"
    assert notification.text.startswith("Job dpo-beta-0.1 ended: Failed (exit code 3, ran 0:12:0")
    assert "owner Member)" in notification.text
    assert notification.text.endswith(f"\nhttps://portal.example.org/jobs/{job.pk}/")
    assert notification.blocks[0]["text"]["text"] == notification.text
    assert notification.sent_at is None and notification.attempts == 0

    assert outbox.collect() == 0  # the same rows read again (not settled yet) make nothing new
    JobEvent.objects.create(job=job, kind=JobEvent.Kind.STATE, from_state="running", to_state="failed")
    assert outbox.collect() == 0  # the same event recorded twice: still one message
    assert Notification.objects.count() == 1


def test_the_cursor_moves_past_settled_rows_only(team: Team, english: Any) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster())
    end_job(job, Job.State.FAILED, exit_code=1)
    outbox.collect()
    cursor = OutboxCursor.objects.get(source="job-events")
    assert cursor.last_id == 0  # younger than SETTLE: a lower id may still commit
    JobEvent.objects.update(at=timezone.now() - outbox.SETTLE - dt.timedelta(seconds=1))
    outbox.collect()
    cursor.refresh_from_db()
    assert cursor.last_id == JobEvent.objects.get(to_state="failed").pk
    assert Notification.objects.count() == 1


def test_a_late_commit_below_the_newest_id_is_still_read(team: Team, english: Any) -> None:
    cluster = make_cluster()
    first, late = (make_job(team.member("member"), team.sft, cluster, name=n) for n in ("a", "b"))
    end_job(first, Job.State.FAILED, exit_code=1)
    end_job(late, Job.State.FAILED, exit_code=1)
    # The second row's transaction committed last: the worker saw only the first one at first.
    late_event = JobEvent.objects.get(job=late, to_state="failed")
    late_event.delete()
    assert outbox.collect() == 1
    JobEvent.objects.create(
        pk=late_event.pk, job=late, kind="state", from_state="running", to_state="failed", at=late_event.at
    )
    assert outbox.collect() == 1
    assert set(Notification.objects.values_list("event_key", flat=True)) == {
        f"job:{first.pk}:failed",
        f"job:{late.pk}:failed",
    }


def test_a_completed_job_is_announced_as_finished(team: Team, english: Any) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), name="sft")
    end_job(job, Job.State.COMPLETED, exit_code=0)
    outbox.collect()
    assert Notification.objects.get().text.startswith("Job sft finished: Completed (exit code 0,")


def test_live_states_are_not_announced(team: Team) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), state=Job.State.PENDING)
    end_job(job, Job.State.RUNNING)
    outbox.collect()
    assert not Notification.objects.exists()


def test_a_subteam_without_a_channel_gets_nothing(team: Team) -> None:
    job = make_job(team.member("other"), team.pretrain, make_cluster())
    end_job(job, Job.State.FAILED, exit_code=1)
    outbox.collect()
    assert not Notification.objects.exists()


def test_a_rolled_back_state_change_announces_nothing(team: Team) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster())
    with pytest.raises(RuntimeError), transaction.atomic():
        end_job(job, Job.State.FAILED, exit_code=1)
        raise RuntimeError("the worker's transaction failed")
    outbox.collect()
    assert not Notification.objects.exists()


def test_the_worker_step_collects_and_delivers(
    team: Team, english: Any, slack_settings: Any, fake_slack: FakeSlack
) -> None:
    assert "slackbot.delivery.run_from_worker" in settings.SCHEDULER_CYCLE_STEPS
    job = make_job(team.member("member"), team.sft, make_cluster(), name="ends")
    end_job(job, Job.State.FAILED, exit_code=1)
    delivery.run_from_worker()
    delivery.run_from_worker()
    assert [m["text"].split(" (")[0] for m in fake_slack.messages] == ["Job ends ended: Failed"]


# --- bookings -------------------------------------------------------------------------------------------------


def test_booking_events_become_messages_idle_once_an_hour(team: Team, english: Any) -> None:
    from lending.models import Reservation, ReservationEvent

    now = timezone.now()
    r = Reservation.objects.create(
        requester=team.member("member"), subteam=team.sft, cluster=make_cluster(), gpus=8,
        start=now, end=now + dt.timedelta(hours=3), purpose="SFT sweep", state="approved",
    )  # fmt: skip
    for kind in ("requested", "approved", "idle", "idle", "finished"):
        ReservationEvent.objects.create(reservation=r, kind=kind)
    assert outbox.collect() == 2  # approved, idle (requested and finished are not told)
    keys = sorted(Notification.objects.values_list("event_key", flat=True))
    assert keys[0] == f"reservation:{r.pk}:approved" and keys[1].startswith(f"reservation:{r.pk}:idle:")


# --- evaluation results ----------------------------------------------------------------------------------------


def test_an_eval_result_is_announced_once_per_score(team: Team, english: Any) -> None:
    from evals.models import EvalResult, EvalResultEvent

    result = EvalResult.objects.create(
        model_name="8x8B-dpo", subteam=team.sft, average=7.91, judge_model="gpt-4"
    )
    for _ in range(2):
        EvalResultEvent.objects.create(result=result, average=result.average)
    outbox.collect()
    notification = Notification.objects.get()
    assert notification.text.startswith("Evaluation result landed: 8x8B-dpo, ")
    assert "average 7.91 (judge gpt-4)" in notification.text
    assert f"https://portal.example.org/evals/results/{result.pk}/" in notification.text
    baseline = EvalResult.objects.create(
        model_name="reference", subteam=team.sft, average=7.81, is_baseline=True
    )
    EvalResultEvent.objects.create(result=baseline, average=baseline.average)
    outbox.collect()
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
    delivery.run_from_worker()
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


def test_names_cannot_ping_the_channel(team: Team, english: Any) -> None:
    job = make_job(team.member("member"), team.sft, make_cluster(), name="<!channel> & co")
    end_job(job, Job.State.FAILED, exit_code=1)
    outbox.collect()
    assert Notification.objects.get().text.startswith("Job &lt;!channel&gt; &amp; co ended:")


def test_a_job_cancelled_through_the_scheduler_service_is_announced(team: Team, english: Any) -> None:
    from scheduler.services import cancel_job

    job = make_job(team.member("member"), team.sft, make_cluster(), name="queued", state=Job.State.SUBMITTING)
    cancel_job(team.member("member"), job)
    outbox.collect()
    notification = Notification.objects.get()
    assert notification.event_key == f"job:{job.pk}:cancelled"
    assert notification.text.startswith("Job queued ended: Cancelled (exit code –, ran –,")
