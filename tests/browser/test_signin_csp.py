"""After signing in, every kind of page loads in a real browser without the Content-Security-Policy
blocking anything (no inline script, no inline <style>, nothing from elsewhere)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_signin import csp_violations
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/",
    "/subteams/",
    "/subteams/sft/",
    "/tasks/?subteam=sft",
    "/goals/",
    "/timeline/",
    "/learnings/",
    "/members/",
    "/members/admin/",
    "/jobs/",
    "/jobs/new/",
    "/jobs/train/?kind=sft",
    "/pipelines/",
    "/clusters/",
    "/gpus/",
    "/gpus/new/",
    "/gpus/calendar/",
    "/leaderboard/",
    "/api/docs/",
    "/admin/",
    "/admin/portal/member/",
]


def test_the_pages_load_without_csp_violations(live_server: Any, page: Any, team: Team) -> None:
    base = live_server.url
    blocked = csp_violations(page)
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", PASSWORD)
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"{base}/")
    for path in PAGES:
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, path
        page.wait_for_load_state("networkidle")
        assert blocked == [], (path, blocked)
    page.goto(f"{base}/api/docs/")
    page.locator(".swagger-ui .info").wait_for()  # its start-up script ran (served as a file)
