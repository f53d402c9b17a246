from __future__ import annotations

import threading

import pytest
from django.db import connection

from portal import services
from portal.models import Task
from tests.personas import Team


def test_moving_with_htmx_returns_the_board_fragment(team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="Tokenise batch 3")
    response = team.client("member").post(
        f"/tasks/{task.pk}/move/", {"status": "doing", "board": "sft"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert response["HX-Retarget"] == "#board"
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="board"')
    assert f'id="task-{task.pk}" data-status="doing"' in body
    task.refresh_from_db()
    assert task.status == "doing"


def test_moving_without_javascript_redirects_back_to_the_board(team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="t")
    response = team.client("member").post(
        f"/tasks/{task.pk}/move/", {"status": "blocked", "next": "/tasks/?subteam=sft"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/tasks/?subteam=sft"
    task.refresh_from_db()
    assert task.status == "blocked"


def test_it_refuses_an_unknown_status(team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="t")
    response = team.client("member").post(f"/tasks/{task.pk}/move/", {"status": "finished"})
    assert response.status_code == 400
    task.refresh_from_db()
    assert task.status == "todo"


def test_quick_add_with_an_empty_title_shows_the_error_and_creates_nothing(team: Team) -> None:
    response = team.client("member").post(
        "/tasks/new/?subteam=sft",
        {"quick": "1", "subteam": team.sft.pk, "title": "  ", "status": "todo", "board": "sft"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert Task.objects.count() == 0


def test_full_form_rejects_a_due_date_before_the_start(team: Team) -> None:
    response = team.client("member").post(
        "/tasks/new/",
        {
            "subteam": team.sft.pk,
            "title": "Upcycle 8B to 8x8B",
            "status": "todo",
            "priority": 2,
            "start_date": "2024-07-10",
            "due_date": "2024-07-01",
        },
    )
    assert response.status_code == 200
    assert "cannot be before the start" in response.content.decode()
    assert Task.objects.count() == 0


def test_inline_edit_returns_a_form_then_saves(team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="Old")
    client = team.client("member")
    form = client.get(f"/tasks/{task.pk}/edit/?inline=1&board=sft", HTTP_HX_REQUEST="true")
    assert form.status_code == 200
    assert f'hx-post="/tasks/{task.pk}/edit/"' in form.content.decode()
    saved = client.post(
        f"/tasks/{task.pk}/edit/",
        {
            "inline": "1",
            "board": "sft",
            "subteam": team.sft.pk,
            "title": "New",
            "status": "doing",
            "priority": 3,
            "assignees": [team.member("member").pk],
            "learnings": "LoRA r=16 was enough",
        },
        HTTP_HX_REQUEST="true",
    )
    assert saved.status_code == 200
    assert saved["HX-Retarget"] == "#board"
    task.refresh_from_db()
    assert (task.title, task.status, task.priority, task.learnings) == (
        "New",
        "doing",
        3,
        "LoRA r=16 was enough",
    )
    assert list(task.assignees.all()) == [team.member("member")]


def test_a_member_cannot_move_a_task_into_another_subteam(team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="Mine")
    response = team.client("member").post(
        f"/tasks/{task.pk}/edit/",
        {"subteam": team.pretrain.pk, "title": "Mine", "status": "todo", "priority": 2},
    )
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.subteam == team.sft


@pytest.mark.django_db(transaction=True)
def test_two_people_moving_one_task_at_once_leave_one_consistent_state(team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="Contended")
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def move(status: str) -> None:
        try:
            barrier.wait()
            services.move_task(None, task, status)
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=move, args=(s,)) for s in ("doing", "done")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    task.refresh_from_db()
    assert task.status in ("doing", "done")
    assert Task.objects.count() == 1


def test_a_task_cannot_point_at_another_subteams_goal(team: Team) -> None:
    from portal.models import Goal

    goal = Goal.objects.create(subteam=team.pretrain, title="800B tokens ready")
    response = team.client("member").post(
        "/tasks/new/",
        {"subteam": team.sft.pk, "title": "t", "status": "todo", "priority": 2, "goal": goal.pk},
    )
    assert response.status_code == 200
    assert "same subteam" in response.content.decode()
    assert Task.objects.count() == 0
