"""One duration format for pages, the API and Slack: hours:minutes:seconds, days in front past a day; and
the letters on a member's avatar."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from portal.formatting import format_duration, initials
from portal.models import Task
from slackbot.notify import duration as slack_duration
from tests.personas import Team


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0, "0:00:00"),
        (59.9, "0:00:59"),
        (540, "0:09:00"),
        (3723, "1:02:03"),
        (86399, "23:59:59"),
        (86400, "1d 0:00:00"),
        (2 * 86400 + 3723, "2d 1:02:03"),
    ],
)
def test_a_duration_reads_as_hours_minutes_seconds_with_days_in_front(
    seconds: float | None, text: str
) -> None:
    assert format_duration(seconds) == text


def test_the_template_filter_formats_numbers_and_leaves_anything_else_empty() -> None:
    template = Template(
        "{% load formatting %}[{{ a|duration }}][{{ b|duration }}][{{ c|duration|default:'–' }}]"
    )
    assert template.render(Context({"a": 3723, "b": 90061.5, "c": None})) == "[1:02:03][1d 1:01:01][–]"


def test_slack_messages_keep_the_days_and_say_a_dash_for_nothing() -> None:
    assert slack_duration(None) == "–"
    assert slack_duration(2 * 86400 + 3723) == "2d 1:02:03"


@pytest.mark.parametrize(
    ("name", "letters"),
    [
        ("Shun Maruyama", "SM"),
        ("shun maruyama", "SM"),
        ("Shun", "S"),
        ("Haruki Tsuchiya Jr", "HJ"),
        ("  Aoi   Kinoshita  ", "AK"),
        ("Jean-Luc Picard", "JP"),
        ("(Mei) Kawabata", "MK"),
        ("丸山 駿", "丸駿"),
        ("丸山\u3000駿", "丸駿"),
        ("丸山駿", "丸"),
        ("", ""),
        ("- ·", ""),
    ],
)
def test_avatar_initials_are_the_first_letters_of_the_first_and_last_words(name: str, letters: str) -> None:
    assert initials(name) == letters


def test_the_board_shows_the_initials_of_first_and_last_name(team: Team) -> None:
    member = team.member("member")
    member.display_name = "Shun Maruyama"
    member.save(update_fields=["display_name"])
    task = Task.objects.create(subteam=team.sft, title="t")
    task.assignees.set([member])
    html = team.client("member").get("/tasks/?subteam=sft").content.decode()
    assert '<span class="avatar" title="Shun Maruyama">SM</span>' in html
