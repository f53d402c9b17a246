"""The task form keeps what the user did not change, and starts new tasks the way members mostly want them:
in their subteam, assigned to themselves."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser

import pytest

from portal.forms import GoalForm, QuickTaskForm, TaskForm
from portal.models import Goal, Membership, Task
from scheduler.forms import JobForm
from tests.personas import Team


class FormValues(HTMLParser):
    """What a browser would submit with the page's main form (`<form class="stack">`): inputs, selected
    options, textareas; and every select's options."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, list[str]] = {}
        self.options: dict[str, list[tuple[str, str, bool]]] = {}
        self._in_form = False
        self._done = False
        self._select: str | None = None
        self._option: tuple[str, bool] | None = None
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and "stack" in a.get("class", "").split() and not self._done:
            self._in_form = True
        if not self._in_form:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.values.setdefault(a["name"], []).append(a.get("value", ""))
        elif tag == "select":
            self._select = a.get("name")
            self.options.setdefault(self._select or "", [])
        elif tag == "option" and self._select:
            self._option = (a.get("value", ""), "selected" in a)
            self._text = ""
        elif tag == "textarea":
            self._textarea = a.get("name")
            self._text = ""

    def handle_data(self, data: str) -> None:
        if self._option is not None or self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if not self._in_form:
            return
        if tag == "option" and self._select and self._option is not None:
            value, selected = self._option
            self.options[self._select].append((value, self._text.strip(), selected))
            self._option = None
        elif tag == "select" and self._select:
            chosen = [value for value, _label, selected in self.options[self._select] if selected]
            if not chosen and self.options[self._select]:
                chosen = [self.options[self._select][0][0]]  # a single select shows its first option
            self.values[self._select] = chosen
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.values[self._textarea] = [self._text.lstrip("\n")]
            self._textarea = None
        elif tag == "form":
            self._in_form = False
            self._done = True


def read_form(html: str) -> FormValues:
    parser = FormValues()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("state", [Goal.Status.ACHIEVED, Goal.Status.DROPPED])
def test_editing_a_task_whose_goal_is_no_longer_pursued_keeps_the_goal(team: Team, state: str) -> None:
    goal = Goal.objects.create(subteam=team.sft, title="8B SFT baseline", status=state)
    task = Task.objects.create(subteam=team.sft, title="Run the baseline", goal=goal)
    client = team.client("member")

    form = read_form(client.get(f"/tasks/{task.pk}/edit/").content.decode())
    label = {Goal.Status.ACHIEVED: "Achieved", Goal.Status.DROPPED: "Dropped"}[state]
    assert (str(goal.pk), f"8B SFT baseline ({label})", True) in form.options["goal"]

    data = form.values
    data["title"] = ["Run the baseline again"]  # the user changes something else and saves
    response = client.post(f"/tasks/{task.pk}/edit/", data)
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.title == "Run the baseline again"
    assert task.goal == goal


def test_the_inline_edit_card_keeps_an_achieved_goal_too(team: Team) -> None:
    goal = Goal.objects.create(subteam=team.sft, title="Done goal", status=Goal.Status.ACHIEVED)
    task = Task.objects.create(subteam=team.sft, title="t", goal=goal)
    client = team.client("member")
    html = client.get(f"/tasks/{task.pk}/edit/?inline=1&board=sft", HTTP_HX_REQUEST="true").content.decode()
    data = read_form(html).values
    assert data["goal"] == [str(goal.pk)]
    client.post(f"/tasks/{task.pk}/edit/", data, HTTP_HX_REQUEST="true")
    task.refresh_from_db()
    assert task.goal == goal


def test_a_post_without_the_goal_field_does_not_unlink_the_goal(team: Team) -> None:
    goal = Goal.objects.create(subteam=team.sft, title="Dropped goal", status=Goal.Status.DROPPED)
    task = Task.objects.create(subteam=team.sft, title="t", goal=goal)
    response = team.client("member").post(
        f"/tasks/{task.pk}/edit/",
        {"subteam": team.sft.pk, "title": "t2", "status": "doing", "priority": 2},
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert (task.title, task.goal) == ("t2", goal)


def test_choosing_the_empty_goal_still_unlinks_it(team: Team) -> None:
    goal = Goal.objects.create(subteam=team.sft, title="Achieved", status=Goal.Status.ACHIEVED)
    task = Task.objects.create(subteam=team.sft, title="t", goal=goal)
    team.client("member").post(
        f"/tasks/{task.pk}/edit/",
        {"subteam": team.sft.pk, "title": "t", "status": "todo", "priority": 2, "goal": ""},
    )
    task.refresh_from_db()
    assert task.goal is None


def test_closed_goals_of_other_tasks_are_not_offered(team: Team) -> None:
    Goal.objects.create(subteam=team.sft, title="Old achieved goal", status=Goal.Status.ACHIEVED)
    open_goal = Goal.objects.create(subteam=team.sft, title="Open goal")
    task = Task.objects.create(subteam=team.sft, title="t")
    options = read_form(team.client("member").get(f"/tasks/{task.pk}/edit/").content.decode()).options
    assert [label for _v, label, _s in options["goal"]] == ["---------", open_goal.title]


# --- starting a new task, goal or job -----------------------------------------------------------------


def test_a_new_task_starts_in_the_members_only_subteam_and_assigned_to_them(team: Team) -> None:
    form = read_form(team.client("member").get("/tasks/new/").content.decode())
    assert form.values["subteam"] == [str(team.sft.pk)]
    assert form.values["assignees"] == [str(team.member("member").pk)]


def test_a_member_of_two_subteams_chooses_the_subteam_themself(team: Team) -> None:
    Membership.objects.create(
        member=team.member("member"), subteam=team.pretrain, started=dt.date(2024, 6, 1)
    )
    form = TaskForm(user=team.users["member"])
    assert form.initial.get("subteam") is None
    assert form.initial["assignees"] == [team.member("member").pk]


def test_the_boards_subteam_and_an_edited_task_keep_their_own_subteam(team: Team) -> None:
    Membership.objects.create(member=team.member("other"), subteam=team.sft, started=dt.date(2024, 6, 1))
    member = team.users["member"]
    assert TaskForm(user=member, initial={"subteam": team.pretrain.pk}).initial["subteam"] == team.pretrain.pk
    task = Task.objects.create(subteam=team.sft, title="t")
    edit = TaskForm(user=member, instance=task)
    assert edit.initial["subteam"] == team.sft.pk
    assert "assignees" in edit.initial and edit.initial["assignees"] == []


def test_the_quick_form_on_the_all_subteams_board_preselects_the_only_subteam(team: Team) -> None:
    assert (
        QuickTaskForm(user=team.users["member"], initial={"subteam": None}).initial["subteam"] == team.sft.pk
    )


def test_a_new_goal_starts_in_the_subteam_its_lead_leads(team: Team) -> None:
    assert GoalForm(user=team.users["lead"], creating=True).initial["subteam"] == team.sft.pk
    form = read_form(team.client("lead").get("/goals/new/").content.decode())
    assert form.values["subteam"] == [str(team.sft.pk)]


def test_the_job_form_starts_in_the_members_only_subteam(team: Team) -> None:
    assert JobForm(user=team.users["member"]).initial["subteam"] == team.sft.pk
    assert JobForm(user=team.users["member"], initial={"subteam": team.pretrain.pk}).initial["subteam"] == (
        team.pretrain.pk
    )


# --- quick add ------------------------------------------------------------------------------------------


def test_quick_add_assigns_the_task_to_its_creator(team: Team) -> None:
    response = team.client("member").post(
        "/tasks/new/?subteam=sft",
        {
            "quick": "1",
            "subteam": team.sft.pk,
            "title": "Check the tokenizer",
            "status": "todo",
            "board": "sft",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    task = Task.objects.get(title="Check the tokenizer")
    assert list(task.assignees.all()) == [team.member("member")]
    assert task.created_by == team.member("member")


def test_the_full_form_assigns_whoever_is_chosen_even_nobody(team: Team) -> None:
    team.client("member").post(
        "/tasks/new/", {"subteam": team.sft.pk, "title": "Unassigned", "status": "todo", "priority": 2}
    )
    assert list(Task.objects.get(title="Unassigned").assignees.all()) == []
