"""Sign in, move a task from todo to doing on the board with htmx, reload: still doing."""

from __future__ import annotations

from typing import Any

import pytest

from portal.models import Task
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/?next=/tasks/%3Fsubteam%3Dsft")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_a_member_moves_a_task_to_doing_and_it_stays_there(live_server: Any, page: Any, team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="Run the LoRA baseline", status=Task.Status.TODO)
    base = live_server.url

    sign_in(page, base, "member")
    page.wait_for_url(f"{base}/tasks/?subteam=sft")
    card = page.locator(f"#task-{task.pk}")
    assert card.get_attribute("data-status") == "todo"
    assert page.locator(f'[data-column="todo"] #task-{task.pk}').count() == 1

    # Choosing a status and pressing Move fires htmx's POST; the board fragment is swapped in without a reload.
    page.select_option(f'[data-testid="move-{task.pk}"]', "doing")
    with page.expect_response(lambda r: r.url.endswith(f"/tasks/{task.pk}/move/")) as moved:
        page.click(f'[data-testid="move-button-{task.pk}"]')
    assert moved.value.status == 200
    assert moved.value.request.headers.get("hx-request") == "true"
    page.locator(f'[data-column="doing"] #task-{task.pk}').wait_for()

    page.reload()
    assert page.locator(f'[data-column="doing"] #task-{task.pk}').count() == 1
    assert page.locator(f'[data-column="todo"] #task-{task.pk}').count() == 0
    task.refresh_from_db()
    assert task.status == Task.Status.DOING


def test_a_member_adds_a_task_inline(live_server: Any, page: Any, team: Team) -> None:
    base = live_server.url
    sign_in(page, base, "member")
    page.wait_for_url(f"{base}/tasks/?subteam=sft")
    page.fill("#board input[name=title]", "Write the DPO config")
    page.click("#board form.quickadd button[type=submit]")
    page.locator('[data-column="todo"] .card', has_text="Write the DPO config").wait_for()
    assert Task.objects.filter(title="Write the DPO config", subteam=team.sft).exists()
