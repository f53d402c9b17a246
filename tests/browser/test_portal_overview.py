"""The overview at 1280×800: subteams worst first with a legend for their flags, beside the project goals
(no empty area under the goals). A screenshot is kept in test-artifacts/ for people to look at."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from portal.models import Goal, Milestone, Subteam, Task
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SUBTEAMS = [
    "Agent",
    "Code",
    "Instruction data",
    "MoE",
    "Model merging",
    "Multimodal",
    "Synthetic data",
    "Tokenizer",
    "Training code",
]


def sign_in(page: Any, base: str, username: str, next_url: str = "/") -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return dict(found)


def test_the_overview_shows_the_subteam_in_trouble_first_with_a_legend(
    live_server: Any, browser: Any, team: Team
) -> None:
    today = timezone.localdate()
    subteams = {
        name: Subteam.objects.create(name=name, slug=name.lower().replace(" ", "-")) for name in SUBTEAMS
    }
    for name, subteam in subteams.items():
        for status in ("todo", "doing", "done"):
            Task.objects.create(subteam=subteam, title=f"{name} {status}", status=status)
        Task.objects.create(
            subteam=subteam, title=f"{name} stuck", status=Task.Status.BLOCKED
        )  # one: ordinary
    Milestone.objects.create(
        subteam=subteams["Multimodal"], title="Prototype demo", date=today - dt.timedelta(3)
    )
    Goal.objects.create(subteam=subteams["MoE"], title="8x8B MoE", status=Goal.Status.AT_RISK)
    Task.objects.create(subteam=subteams["Code"], title="second stuck", status=Task.Status.BLOCKED)
    for title in ("Top score on Japanese MT-Bench", "Release the final model"):
        Goal.objects.create(title=title, target="What done looks like, in a sentence or two.", due_date=today)

    page = browser.new_page(viewport={"width": 1280, "height": 800}, locale="en-US")
    page.set_default_timeout(15_000)
    try:
        sign_in(page, live_server.url, "member")
        page.wait_for_url(f"{live_server.url}/")
        artifacts = Path(settings.BASE_DIR) / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        shot = page.screenshot(path=str(artifacts / "overview-1280x800.png"))
        assert shot[:8] == b"\x89PNG\r\n\x1a\n"

        # Worst first: the late one, then the two at risk (a goal at risk before blocked tasks), then the rest.
        cards = page.locator(".teamcard")
        order = [cards.nth(i).get_attribute("data-subteam") for i in range(cards.count())]
        flags = [cards.nth(i).get_attribute("data-health") for i in range(cards.count())]
        assert order[:3] == ["multimodal", "moe", "code"]
        assert flags == ["behind", "risk", "risk"] + ["ok"] * (len(flags) - 3)
        first = box(page, ".teamcard")
        assert first["y"] + first["height"] <= 800, "the worst subteam is on the first screen"
        assert page.locator(".teamcard").first.locator(".badge.behind").first.is_visible()

        # The legend says what each flag means, on the first screen.
        legend = page.locator("#health-legend")
        assert legend.is_visible()
        for words in ("Behind", "At risk", "On track", "2 or more tasks are blocked"):
            assert words in legend.inner_text()
        legend_box = box(page, "#health-legend")
        assert legend_box["y"] + legend_box["height"] <= 800

        # Goals beside the subteams, and no stretched empty panel under the goals.
        goals = box(page, "#project-goals")
        teams = box(page, "#subteams-at-a-glance")
        assert teams["x"] >= goals["x"] + goals["width"]
        assert abs(teams["y"] - goals["y"]) < 40
        last_goal = page.locator("#project-goals .goalcard").last.bounding_box()
        assert last_goal is not None
        assert goals["y"] + goals["height"] - (last_goal["y"] + last_goal["height"]) < 60
    finally:
        page.close()
