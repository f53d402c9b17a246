"""In a real browser: typing in the booking form updates the availability preview (htmx, no
submit), which explains the conflict in words; the request then lands on the booking's page."""

from __future__ import annotations

from typing import Any

import pytest

from lending import services
from lending.models import Reservation
from scheduler.models import Cluster
from tests.browser.conftest import browser, page  # noqa: F401
from tests.lending.conftest import soon
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_preview_follows_the_typing_and_the_request_is_recorded(
    live_server: Any,
    page: Any,  # noqa: F811
    team: Team,
    lab: Cluster,
    book: Any,
) -> None:
    services.approve(team.member("admin"), book("lead", gpus=24, hours=(1, 3), purpose="dpo sweep"))
    base = live_server.url
    page.goto(f"{base}/accounts/login/?next=/gpus/new/")
    page.fill("#id_username", "member")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/gpus/new/")

    page.select_option("#id_subteam", label="Fine-tuning")
    page.fill("#id_start", soon(1).astimezone().strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_end", soon(3).astimezone().strftime("%Y-%m-%dT%H:%M"))
    page.fill("#id_purpose", "mt-bench")
    with page.expect_response(lambda r: "/gpus/preview/" in r.url) as previewed:
        page.fill("#id_gpus", "")
        page.locator("#id_gpus").press_sequentially("16")  # keyup, 300 ms later: the preview
    assert previewed.value.request.headers.get("hx-request") == "true"
    conflict = page.locator('[data-testid="conflicts"]')
    conflict.wait_for()
    assert "only 8 GPUs free" in conflict.inner_text() and "'dpo sweep' by Lead" in conflict.inner_text()
    assert page.locator(".heatstrip .cell.short").count() == 2
    assert Reservation.objects.count() == 1  # previews record nothing

    page.fill("#id_gpus", "")
    page.locator("#id_gpus").press_sequentially("8")
    page.locator('[data-testid="fits"]').wait_for()
    page.click("#booking-form button[type=submit]")
    page.wait_for_url(f"{base}/gpus/*/")
    mine = Reservation.objects.get(purpose="mt-bench")
    assert page.url == f"{base}{mine.get_absolute_url()}"
    assert (mine.requester, mine.gpus, mine.state) == (team.member("member"), 8, "requested")
