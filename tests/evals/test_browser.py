"""In a real browser: sort the leaderboard (htmx swaps the table), then compare a result with another."""

from __future__ import annotations

from typing import Any

import pytest

from evals import services
from tests.browser.conftest import browser, page  # noqa: F401 - Debian's chromium through Playwright
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REF = [5.20, 8.15, 9.40, 6.10, 6.80, 8.55, 9.35, 8.90]
DPO = [6.75, 6.90, 9.30, 5.75, 7.35, 8.95, 9.40, 8.85]
CATEGORIES = ("coding", "extraction", "humanities", "math", "reasoning", "roleplay", "stem", "writing")


def test_sorting_and_comparing_in_the_browser(live_server: Any, page: Any, team: Team) -> None:  # noqa: F811
    ref = services.add_baseline(
        None,
        model_name="external reference model",
        average=7.81,
        categories=dict(zip(CATEGORIES, REF, strict=True)),
    )
    dpo = services.add_result(
        None,
        model_name="8x8B DPO",
        average=7.91,
        categories=dict(zip(CATEGORIES, DPO, strict=True)),
        subteam=team.sft,
    )
    base = live_server.url
    page.goto(f"{base}/accounts/login/?next=/leaderboard/")
    page.fill("#id_username", "member")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/leaderboard/")
    rows = page.locator("#leaderboard tbody tr")
    assert rows.first.get_attribute("id") == f"result-{dpo.pk}"

    with page.expect_response(lambda r: "sort=-extraction" in r.url) as sorted_:
        page.click("#leaderboard th >> text=Extraction")
    assert sorted_.value.request.headers.get("hx-request") == "true"
    page.wait_for_function(f"() => document.querySelector('#leaderboard tbody tr').id === 'result-{ref.pk}'")
    assert "sort=-extraction" in page.url  # pushed: a reload keeps the order
    page.reload()
    assert rows.first.get_attribute("id") == f"result-{ref.pk}"

    page.click(f"#result-{dpo.pk} td a")
    page.wait_for_url(f"{base}/evals/results/{dpo.pk}/")
    assert page.locator("#radar polygon.baseline").count() == 1
    with page.expect_response(lambda r: "compare=none" in r.url):
        page.select_option("#compare", "none")
    page.wait_for_function("() => document.querySelectorAll('#radar polygon.baseline').length === 0")
    assert page.locator("#radar circle.model").count() == 8
