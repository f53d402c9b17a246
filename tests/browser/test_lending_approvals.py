"""In a real browser, an admin sees "3 awaiting approval" in the nav, follows it to the filtered list,
ticks them all with the header checkbox and approves them in one go."""

from __future__ import annotations

from typing import Any

import pytest

from lending.models import Reservation
from scheduler.models import Cluster
from tests.browser.conftest import browser, page  # noqa: F401
from tests.lending.conftest import book, lab  # noqa: F401
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_follows_the_badge_and_approves_every_waiting_booking(
    live_server: Any,
    page: Any,  # noqa: F811
    team: Team,
    lab: Cluster,  # noqa: F811
    book: Any,  # noqa: F811
) -> None:
    waiting = [book("member", hours=(h, h + 1), purpose=f"eval {h}") for h in (1, 3, 5)]
    base = live_server.url
    page.goto(f"{base}/accounts/login/?next=/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")

    badge = page.locator("#nav-awaiting")
    assert badge.inner_text() == "3 awaiting approval"
    badge.click()
    page.wait_for_url(f"{base}/gpus/?state=awaiting")
    assert page.locator('input[name="booking"]').count() == 3
    page.check('input[data-select-all="booking"]')
    assert page.locator('input[name="booking"]:checked').count() == 3
    page.click('#decide-many button[value="approve"]')
    page.wait_for_url(f"{base}/gpus/?state=awaiting")
    assert "Approved 3 bookings." in page.locator(".messages").inner_text()
    assert page.locator("#nav-awaiting").count() == 0
    assert {r.state for r in Reservation.objects.filter(pk__in=[r.pk for r in waiting])} == {"approved"}
