"""The task board by mouse and by keyboard: drag a card to another column; the status select changes
nothing until "Move" is pressed; the assignee picker finds a name as you type and starts with yourself."""

from __future__ import annotations

from typing import Any

import pytest

from portal.models import Member, Task
from tests.personas import PASSWORD, Team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, base: str, username: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def drag(page: Any, card: Any, status: str) -> None:
    """Drag a card by its edge (not its title link, select or buttons) onto a column."""
    size = card.bounding_box()
    corner = {"x": size["width"] - 6, "y": size["height"] - 4}
    card.drag_to(page.locator(f'[data-dropzone="{status}"]'), source_position=corner)


def moves(page: Any) -> list[str]:
    """The move requests the page sends from now on."""
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/move/" in r.url else None)
    return sent


def test_a_card_dragged_to_another_column_moves_there(live_server: Any, page: Any, team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="Run the LoRA baseline")
    base = live_server.url
    sign_in(page, base, "member", "/tasks/%3Fsubteam%3Dsft")
    page.wait_for_url(f"{base}/tasks/?subteam=sft")

    card = page.locator(f"#task-{task.pk}")
    with page.expect_response(lambda r: r.url.endswith(f"/tasks/{task.pk}/move/")) as moved:
        drag(page, card, "doing")
    assert moved.value.status == 200
    assert moved.value.request.headers.get("hx-request") == "true"
    page.locator(f'[data-column="doing"] #task-{task.pk}').wait_for()
    task.refresh_from_db()
    assert task.status == Task.Status.DOING

    # The swapped-in board can be dragged on again.
    with page.expect_response(lambda r: r.url.endswith(f"/tasks/{task.pk}/move/")):
        drag(page, page.locator(f"#task-{task.pk}"), "done")
    page.locator(f'[data-column="done"] #task-{task.pk}').wait_for()
    task.refresh_from_db()
    assert task.status == Task.Status.DONE


def test_arrow_keys_on_the_status_select_move_nothing_until_move_is_pressed(
    live_server: Any, page: Any, team: Team
) -> None:
    task = Task.objects.create(subteam=team.sft, title="Write the DPO config")
    base = live_server.url
    sign_in(page, base, "member", "/tasks/%3Fsubteam%3Dsft")
    page.wait_for_url(f"{base}/tasks/?subteam=sft")
    sent = moves(page)

    select = page.locator(f'[data-testid="move-{task.pk}"]')
    select.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert select.input_value() == "blocked"
    page.wait_for_timeout(800)
    assert sent == []
    task.refresh_from_db()
    assert task.status == Task.Status.TODO

    page.keyboard.press("Tab")  # to the card's Move button
    assert page.evaluate("document.activeElement.dataset.testid") == f"move-button-{task.pk}"
    with page.expect_response(lambda r: r.url.endswith(f"/tasks/{task.pk}/move/")):
        page.keyboard.press("Enter")
    page.locator(f'[data-column="blocked"] #task-{task.pk}').wait_for()
    task.refresh_from_db()
    assert task.status == Task.Status.BLOCKED
    assert len(sent) == 1


def test_the_assignee_picker_starts_with_me_and_finds_a_name_as_i_type(
    live_server: Any, page: Any, team: Team
) -> None:
    for name in ("Shun Maruyama", "Haruki Tsuchiya", "Mei Kawabata", "Aoi Kinoshita"):
        make_user(name.split()[1].lower(), name)
    base = live_server.url
    sign_in(page, base, "member", "/tasks/new/")
    page.wait_for_url(f"{base}/tasks/new/")

    assert page.input_value("#id_subteam") == str(team.sft.pk)  # the member's only subteam
    picker = page.locator(".ts-wrapper")
    assert [picker.locator(".item").nth(0).get_attribute("data-value")] == [str(team.member("member").pk)]
    page.click("#id_assignees-ts-control")
    page.keyboard.type("maru")
    from playwright.sync_api import expect

    expect(page.locator(".ts-dropdown .option:visible")).to_have_text(["Shun Maruyama"])
    page.keyboard.press("Enter")
    assert picker.locator(".item").count() == 2

    page.fill("#id_title", "Compare LoRA ranks")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base}/tasks/*/")
    task = Task.objects.get(title="Compare LoRA ranks")
    assert set(task.assignees.all()) == {
        team.member("member"),
        Member.objects.get(display_name="Shun Maruyama"),
    }
    assert task.subteam == team.sft


def test_a_task_added_on_the_board_is_mine(live_server: Any, page: Any, team: Team) -> None:
    base = live_server.url
    sign_in(page, base, "member", "/tasks/%3Fsubteam%3Dsft")
    page.wait_for_url(f"{base}/tasks/?subteam=sft")
    page.fill("#board input[name=title]", "Check the tokenizer")
    page.click("#board form.quickadd button[type=submit]")
    card = page.locator('[data-column="todo"] .card', has_text="Check the tokenizer")
    card.wait_for()
    assert card.locator(".avatar").all_inner_texts() == ["M"]
    assert list(Task.objects.get(title="Check the tokenizer").assignees.all()) == [team.member("member")]


def test_the_card_edited_in_place_gets_the_picker_too(live_server: Any, page: Any, team: Team) -> None:
    task = Task.objects.create(subteam=team.sft, title="Sweep LoRA ranks")
    task.assignees.set([team.member("lead")])
    base = live_server.url
    sign_in(page, base, "member", "/tasks/%3Fsubteam%3Dsft")
    page.wait_for_url(f"{base}/tasks/?subteam=sft")
    page.click(f"#task-{task.pk} >> text=Edit")
    picker = page.locator(f"#task-{task.pk} .ts-wrapper")
    picker.wait_for()
    assert picker.locator(".item").count() == 1  # the task's own assignee, not the editor
    with page.expect_response(lambda r: r.url.endswith(f"/tasks/{task.pk}/edit/")):
        page.click(f"#task-{task.pk} button[type=submit]")
    page.locator(f'[data-column="todo"] #task-{task.pk}[data-status="todo"]').wait_for()
    assert list(task.assignees.all()) == [team.member("lead")]
