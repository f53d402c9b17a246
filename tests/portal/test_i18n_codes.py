"""The Japanese pages show labels, never the codes behind them (`on_track`, `blocked`, `lead`, …), and call
a date a date (開始日) and a date-time a date-time (開始日時)."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone, translation

from portal.models import Goal, Membership, Milestone, Task
from portal.services import update_goal
from tests.personas import Team

# Every code of the portal's choices and the overview's flag classes, and their English labels (a label
# missing from the catalog shows in English).
CODES = sorted({*Goal.Status.values, *Task.Status.values, *Membership.Role.values, "behind", "risk", "ok"})
CODE = re.compile(r"(?<![\w@/.#-])(" + "|".join(CODES) + r")(?![\w-])")
with translation.override("en"):
    LABELS = sorted(
        {
            *map(str, Goal.Status.labels),
            *map(str, Task.Status.labels),
            *map(str, Task.Priority.labels),
            *map(str, Membership.Role.labels),
            "Behind",
        }
    )
LABEL = re.compile(r"(?<![\w-])(" + "|".join(map(re.escape, LABELS)) + r")(?![\w-])")
JAPANESE_NAMES = {"admin": "木下 葵", "lead": "土屋 春樹", "member": "丸山 駿", "other": "中川 颯太"}


class VisibleText(HTMLParser):
    """The text a reader sees or hears: text nodes and the attributes shown as text (title, aria-label,
    placeholder, alt, data-confirm), outside <script> and <style>."""

    SHOWN = ("title", "aria-label", "placeholder", "alt", "data-confirm")

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self.parts += [value for name, value in attrs if name in self.SHOWN and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return "\n".join(parser.parts)


@pytest.fixture
def plan(team: Team) -> dict[str, int]:
    """One of each state: goals in every status (one with a status change in its history), tasks in every
    status and priority, milestones done, late and ahead, a lead and a member."""
    today = timezone.localdate()
    for role, name in JAPANESE_NAMES.items():  # so that "Lead" and "Member" can only be labels
        team.member(role).display_name = name
        team.member(role).save(update_fields=["display_name"])
    goals = {
        status: Goal.objects.create(
            subteam=team.sft,
            title=f"Goal {i}",
            status=status,
            start_date=today,
            due_date=today + dt.timedelta(9),
        )
        for i, status in enumerate(Goal.Status.values)
    }
    update_goal(None, goals["on_track"], {"status": Goal.Status.AT_RISK}, reason="Data is late")
    for i, (status, priority) in enumerate(zip(Task.Status.values, Task.Priority.values, strict=True)):
        task = Task.objects.create(
            subteam=team.sft,
            title=f"Task {i}",
            status=status,
            priority=priority,
            goal=goals["achieved"],
            start_date=today,
            learnings="Keep the learning rate small",
        )
        task.assignees.set([team.member("member")])
    Milestone.objects.create(subteam=team.sft, title="遅れたマイルストーン", date=today - dt.timedelta(3))
    Milestone.objects.create(
        subteam=team.sft, title="済んだマイルストーン", date=today - dt.timedelta(1), done=True
    )
    Milestone.objects.create(title="先のマイルストーン", date=today + dt.timedelta(5))
    task = Task.objects.order_by("pk").first()
    assert task is not None
    return {"goal": goals["dropped"].pk, "task": task.pk}


PAGES = [
    "/",
    "/subteams/",
    "/subteams/sft/",
    "/tasks/",
    "/tasks/?subteam=sft",
    "/tasks/new/",
    "/tasks/{task}/",
    "/tasks/{task}/edit/",
    "/goals/",
    "/goals/?status=at_risk",
    "/goals/{goal}/",
    "/goals/{goal}/edit/",
    "/goals/new/",
    "/timeline/",
    "/timeline/?scale=month",
    "/milestones/new/",
    "/members/",
    "/members/member/",
    "/learnings/",
    "/learnings/?q=learning",
]


@pytest.mark.parametrize("url", PAGES)
def test_japanese_pages_show_no_raw_codes(team: Team, plan: dict[str, int], url: str) -> None:
    client = Client()  # no Accept-Language: Japanese, the default
    client.force_login(team.users["admin"])
    response = client.get(url.format(**plan))
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="ja">' in html
    text = visible_text(html)
    codes = sorted({m.group(1) for m in CODE.finditer(text)})
    assert not codes, f"raw codes on {url}: {codes}"
    labels = sorted({m.group(1) for m in LABEL.finditer(text)})
    assert not labels, f"English labels on {url}: {labels}"


def test_the_goal_history_shows_status_labels_in_japanese(team: Team, plan: dict[str, int]) -> None:
    goal = Goal.objects.get(title="Goal 0")
    client = Client()
    client.force_login(team.users["member"])
    text = visible_text(client.get(f"/goals/{goal.pk}/").content.decode())
    assert "順調 → 要注意" in re.sub(r"\s+", " ", text)


def test_dates_say_date_and_date_times_say_date_time() -> None:
    with translation.override("ja"):
        assert str(Task._meta.get_field("start_date").verbose_name) == "開始日"
        assert str(Goal._meta.get_field("start_date").verbose_name) == "開始日"
        assert str(Membership._meta.get_field("started").verbose_name) == "開始日"
        assert str(Membership._meta.get_field("ended").verbose_name) == "終了日"
        # The same words elsewhere label date-times (bookings, jobs).
        for word, label in [
            ("start", "開始日時"),
            ("end", "終了日時"),
            ("Start", "開始日時"),
            ("End", "終了日時"),
        ]:
            assert translation.gettext(word) == label
        for word, label in [("started", "開始日時"), ("ended", "終了日時"), ("Started", "開始日時")]:
            assert translation.gettext(word) == label


def test_the_task_form_labels_its_date_fields_as_dates(team: Team) -> None:
    client = Client()
    client.force_login(team.users["member"])
    html = client.get("/tasks/new/").content.decode()
    assert '<label for="id_start_date">開始日:</label>' in html
    assert "開始日時" not in html
