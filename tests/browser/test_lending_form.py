"""In a real browser, the booking form's preview: drawn as soon as the form opens (hour labels and a
legend under the strip), a window that ends before it starts told in the preview and by the end field,
and a request that does not fit offered the next free window, which one click puts in the form."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from lending import services
from lending.models import Reservation
from scheduler.models import Cluster
from tests.browser.conftest import browser, page  # noqa: F401
from tests.lending.conftest import book, lab, soon  # noqa: F401
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def field_value(value: dt.datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")


def test_the_preview_is_there_on_load_explains_a_backwards_window_and_offers_the_next_free_one(
    live_server: Any,
    page: Any,  # noqa: F811
    team: Team,
    lab: Cluster,  # noqa: F811
    book: Any,  # noqa: F811
) -> None:
    services.approve(team.member("admin"), book("lead", gpus=24, hours=(1, 3), purpose="dpo sweep"))
    base = live_server.url
    page.goto(f"{base}/accounts/login/?next=/gpus/new/")
    page.fill("#id_username", "member")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/gpus/new/")

    # 1. On load: the default window's strip, its hour labels and its legend, before any typing.
    page.locator('#preview [data-testid="fits"]').wait_for()
    assert page.locator("#preview .heatstrip .cell").count() == 4
    assert page.locator('#preview [data-testid="hours"] .tick').count() >= 3
    legend = page.locator('#preview [data-testid="legend"]')
    assert legend.is_visible() and "Free GPUs in the hour" in legend.inner_text()

    # 2. An end before the start: the error in the preview and by the end field, not the placeholder.
    page.fill("#id_start", field_value(soon(3)))
    page.fill("#id_end", field_value(soon(1)))
    page.dispatch_event("#id_end", "change")
    page.locator('#preview [data-testid="window-error"]').wait_for()
    assert "Choose a cluster" not in page.locator("#preview").inner_text()
    assert page.locator("#window-error").inner_text() == "The end must be after the start."

    # 3. 16 GPUs where only 8 are free: the next window of the same length, one click away.
    page.fill("#id_start", field_value(soon(1)))
    page.fill("#id_end", field_value(soon(3)))
    page.fill("#id_purpose", "mt-bench")
    page.fill("#id_gpus", "")
    page.locator("#id_gpus").press_sequentially("16")
    tip = page.locator('#preview [data-testid="suggestion"]')
    tip.wait_for()
    assert page.locator("#window-error").inner_text() == ""  # the end field's error is gone
    assert "only 8 GPUs free" in page.locator('[data-testid="conflicts"]').inner_text()
    tip.get_by_role("link", name="Use this window").click()
    page.locator('#preview [data-testid="fits"]').wait_for()
    assert page.input_value("#id_start") == field_value(soon(3))
    assert page.input_value("#id_end") == field_value(soon(5))
    assert (page.input_value("#id_gpus"), page.input_value("#id_purpose")) == ("16", "mt-bench")
    page.click("#booking-form button[type=submit]")
    page.wait_for_url(f"{base}/gpus/*/")
    mine = Reservation.objects.get(purpose="mt-bench")
    assert (mine.start, mine.end, mine.gpus) == (soon(3), soon(5), 16)
