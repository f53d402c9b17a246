"""The timeline uses the whole width in both scales; milestones of one month are spread by day, each on a
row of its own, and no label overlaps another or is cut off."""

from __future__ import annotations

import datetime as dt
from itertools import combinations
from typing import Any

import pytest
from django.utils import timezone

from portal.models import Goal, Milestone
from tests.personas import PASSWORD, Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def sign_in(page: Any, base: str, username: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"] - 0.5
        and b["x"] < a["x"] + a["width"] - 0.5
        and a["y"] < b["y"] + b["height"] - 0.5
        and b["y"] < a["y"] + a["height"] - 0.5
    )


def boxes(page: Any, selector: str) -> list[dict[str, float]]:
    found: list[dict[str, float]] = page.eval_on_selector_all(
        selector,
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {x: r.x, y: r.y, width: r.width, height: r.height, cut: e.scrollWidth > e.clientWidth + 1,"
        " what: e.className + ' ' + e.textContent.trim().slice(0, 40)}; })",
    )
    return found


@pytest.fixture
def plan(team: Team) -> None:
    today = timezone.localdate()
    month = today.replace(day=1)
    Goal.objects.create(
        title="Top score on Japanese MT-Bench, with every subteam's model in the final comparison",
        start_date=month - dt.timedelta(days=45),
        due_date=month + dt.timedelta(days=40),
    )
    Goal.objects.create(
        subteam=team.sft, title="SFT", start_date=today, due_date=today + dt.timedelta(days=3)
    )
    Goal.objects.create(
        subteam=team.pretrain,
        title="Data",
        status=Goal.Status.AT_RISK,
        start_date=month - dt.timedelta(days=30),
        due_date=month,
    )
    for day, title in [
        (2, "MoE training starts (8x8B upcycled from the 8B)"),
        (5, "All-hands: mid-project review"),
        (12, "All-hands: plan the final push"),
        (12, "8B SFT/DPO submitted to the leaderboard"),
        (19, "Final push starts: data, pretraining, SFT and DPO as one team"),
        (28, "Final SFT + DPO"),
    ]:
        Milestone.objects.create(title=title, date=month + dt.timedelta(days=day - 1))
    Milestone.objects.create(subteam=team.sft, title="Last day", date=month + dt.timedelta(days=40))


@pytest.mark.parametrize("scale", ["week", "month"])
@pytest.mark.parametrize("width", [1280, 1600])
def test_the_timeline_fills_the_width_and_nothing_overlaps(
    live_server: Any, browser: Any, team: Team, plan: None, scale: str, width: int
) -> None:
    page = browser.new_page(viewport={"width": width, "height": 900}, locale="en-US")
    page.set_default_timeout(15_000)
    try:
        sign_in(page, live_server.url, "member", f"/timeline/?scale={scale}")
        page.wait_for_url(f"{live_server.url}/timeline/?scale={scale}")
        wrap = boxes(page, ".gantt-wrap")[0]
        chart = boxes(page, ".gantt")[0]
        track = boxes(page, ".gantt .ticks")[0]
        assert chart["width"] >= 0.9 * wrap["width"]
        assert track["x"] + track["width"] >= wrap["x"] + 0.9 * wrap["width"]
        # The last week or month ends at the track's right edge.
        last_tick = boxes(page, ".gantt .tick")[-1]
        assert abs(last_tick["x"] + last_tick["width"] - (track["x"] + track["width"])) < 2

        marks = boxes(page, ".gantt .ms")
        labels = boxes(page, ".gantt .label")
        bars = boxes(page, ".gantt .bar")
        assert len(marks) == 7 and len(labels) == 10 and len(bars) == 3
        for a, b in combinations(marks, 2):
            assert not overlap(a, b), (a, b)
        for a, b in combinations(labels, 2):
            assert not overlap(a, b), (a, b)
        for item in [*marks, *labels]:
            assert not item["cut"], item
        for item in [*marks, *labels, *bars, *boxes(page, ".gantt .bar-text")]:
            assert (
                item["x"] >= wrap["x"] - 1 and item["x"] + item["width"] <= wrap["x"] + wrap["width"] + 1
            ), item["what"]
        # Milestones of one month sit at their days, not all at one x.
        assert len({round(m["x"]) for m in marks}) >= 6

        # Each milestone can be reached with the keyboard and names its date and title.
        mark = page.locator(".gantt .ms").first
        mark.focus()
        assert page.evaluate("document.activeElement.classList.contains('ms')")
        assert (mark.get_attribute("title") or "").endswith("MoE training starts (8x8B upcycled from the 8B)")
    finally:
        page.close()
