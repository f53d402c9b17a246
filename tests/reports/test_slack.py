"""A published report is posted to the subteam's channel once, through the outbox, to a local server that
speaks Slack's Web API; `/tanuki report` answers the week's report with its link."""

from __future__ import annotations

from typing import Any

import pytest

from reports import services, weeks
from slackbot import delivery, outbox
from slackbot.models import Notification
from tests.personas import Team
from tests.reports.conftest import Week
from tests.slackbot.conftest import Slash
from tests.slackbot.fakeslack import FakeSlack

pytestmark = pytest.mark.django_db


@pytest.fixture
def english(slack_settings: Any) -> Any:
    slack_settings.LANGUAGE_CODE = "en"
    return slack_settings


def test_publishing_makes_exactly_one_notification_with_a_link(
    team: Team, sft_week: Week, english: Any
) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.edit(team.member("lead"), report, body="", issues="Need 16 more GPUs\nand data", revision=0)
    assert outbox.collect() == 0  # a draft is not told
    services.publish(team.member("lead"), report)
    services.publish(team.member("lead"), report)  # a second press: nothing new

    assert outbox.collect() == 1
    assert outbox.collect() == 0  # the same rows read again (not settled yet) make nothing new
    notification = Notification.objects.get()
    assert notification.channel == "#sft"
    assert notification.event_key == f"report:{report.pk}:published"
    week = sft_week.week.isoformat()
    assert notification.text.splitlines() == [
        f"*Weekly report of Fine-tuning, week of {week}* (published by Lead)",
        "• 1 tasks done, 1 blocked, 1 goal changes",
        "• 3 jobs, 68 GPU-hours used of 96 booked",
        "• best new score: sft-v2-lora16 7.20 (a new best)",
        "• Issues: Need 16 more GPUs",
        f"https://portal.example.org/reports/teams/sft/{week}/",
    ]


def test_a_subteam_without_a_channel_gets_nothing(team: Team, sft_week: Week, english: Any) -> None:
    report = services.draft(team.pretrain, sft_week.week, team.member("admin"))
    services.publish(team.member("admin"), report)
    assert outbox.collect() == 0


def test_the_published_report_reaches_slack(
    team: Team, sft_week: Week, english: Any, fake_slack: FakeSlack
) -> None:
    report = services.draft(team.sft, sft_week.week, team.member("lead"))
    services.publish(team.member("lead"), report)
    delivery.run_from_worker()  # the worker's cycle step: collect, then post
    delivery.run_from_worker()
    (message,) = fake_slack.messages
    assert message["channel"] == "#sft"
    assert message["text"].startswith("*Weekly report of Fine-tuning")
    assert message["authorization"] == "Bearer xoxb-test-token"
    assert Notification.objects.get().sent_at is not None


def test_report_command_answers_the_published_report(linked: Team, sft_week: Week, slash: Slash) -> None:
    report = services.draft(linked.sft, sft_week.week, linked.member("lead"))
    services.publish(linked.member("lead"), report)
    text = slash(f"report sft {sft_week.week.isoformat()}", locale="en-US")
    assert text.startswith(
        f"*Weekly report of Fine-tuning, week of {sft_week.week.isoformat()}* (published by Lead)"
    )
    assert "68 GPU-hours used of 96 booked" in text
    assert text.endswith(f"https://portal.example.org{report.get_absolute_url()}")
    assert slash("report last", locale="en-US") == text  # my only subteam, last week


def test_report_command_without_a_report_gives_the_week_so_far(linked: Team, slash: Slash) -> None:
    text = slash("report", locale="en-US")
    this = weeks.this_week().isoformat()
    assert text.startswith(f"*Weekly report of Fine-tuning, week of {this}* (no report yet: the week so far)")
    assert text.endswith(f"https://portal.example.org/reports/teams/sft/{this}/")
    assert "週報" in slash("report", locale="ja-JP")


def test_report_command_explains_what_was_wrong(linked: Team, slash: Slash) -> None:
    assert slash("report sft next-year", locale="en-US").startswith("Usage: `report [subteam] [week]`")
    assert slash("report 2999-01-04", locale="en-US").startswith("That week has not begun")
    assert "`report [subteam] [week]`" in slash("help", locale="en-US")
