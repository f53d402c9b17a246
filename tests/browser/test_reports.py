"""A lead's week in a real browser: start the draft from the week's data, write the report, publish it;
then the report on a phone (390×844), with nothing wider than the screen. The phone screenshots are kept
in test-artifacts/ (docs/screenshots/report-mobile.png is a copy)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from reports import weeks
from reports.models import WeeklyReport
from slackbot import outbox
from slackbot.models import Notification
from tests.personas import PASSWORD, Team
from tests.reports.conftest import make_week

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, base: str, username: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{next_url}")


def test_a_lead_takes_the_weeks_report_from_draft_to_published(
    live_server: Any, browser: Any, page: Any, team: Team
) -> None:
    week = weeks.this_week() - dt.timedelta(days=7)  # a week whose rows are all in the past
    make_week(team, week)
    path = f"/reports/teams/sft/{week.isoformat()}/"
    base = live_server.url
    sign_in(page, base, "lead", path)

    assert page.locator("#report-state").inner_text() == "Not started"
    assert "Compare LoRA ranks" in page.locator("#done").inner_text()  # the week so far
    page.click("#start-draft")
    page.wait_for_url(f"{base}{path}")
    assert page.locator("#report-state").inner_text() == "Draft"

    page.click("text=Edit text")
    page.fill("#id_body", "**LoRA rank 16** is our pick.\n\n- rank 64 overfit")
    page.fill("#id_issues", "The 100k set is late: can the data team help?")
    page.click("#report-form button[type=submit]")
    page.wait_for_url(f"{base}{path}")
    assert page.locator("#lead-text strong").inner_text() == "LoRA rank 16"
    assert "can the data team help?" in page.locator("#lead-text .issues").inner_text()

    page.click("#publish")
    page.wait_for_url(f"{base}{path}")
    assert page.locator("#report-state").inner_text() == "Published"
    assert "posted to #sft" in page.locator(".messages").inner_text()
    assert page.locator("#publish").count() == 0
    report = WeeklyReport.objects.get()
    assert report.state == "published" and report.body.startswith("**LoRA rank 16**")
    assert outbox.collect() == 1
    assert Notification.objects.get().channel == "#sft"

    artifacts = Path(settings.BASE_DIR) / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "report-1400.png"), full_page=True)
    for locale, name in (("ja-JP", "report-mobile-390x844.png"), ("en-US", "report-mobile-390x844-en.png")):
        phone = browser.new_context(
            locale=locale, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
        )
        try:
            mobile = phone.new_page()
            mobile.set_default_timeout(15_000)
            sign_in(mobile, base, "member", path)
            assert mobile.locator(".badge.report-published").count() == 1
            width = mobile.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"the page is {width}px wide on a 390px screen"
            shot = mobile.screenshot(path=str(artifacts / name), full_page=False)
            assert shot[:8] == b"\x89PNG\r\n\x1a\n"
        finally:
            phone.close()
