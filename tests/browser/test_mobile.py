"""The portal on a phone (390×844): no page is wider than the screen (and axe-core finds nothing serious
there either: the folded menu, the tables that scroll in their own box), the header stays small until its menu
is opened (a button with aria-expanded; Escape closes it and gives the focus back), and a job's state and
progress are on the first screen even with long logs. Screenshots of the overview, a job and the cluster
page are kept in test-artifacts/ (docs/screenshots/mobile-*.png and docs/screenshots/en/mobile-*.png are
copies).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.browser.test_a11y import (
    BLOCKING,
    axe_violations,
    describe,
    hold_live_pages,
    populated_site,
    sign_in,
)
from tests.metrics.conftest import run_file  # noqa: F401
from tests.personas import Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 390, 844
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"


def phone(browser: Any, locale: str) -> Any:
    return browser.new_context(
        locale=locale,
        viewport={"width": WIDTH, "height": HEIGHT},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )


def page_width(page: Any) -> int:
    return int(page.evaluate("document.scrollingElement.scrollWidth"))


def wider_than_the_screen(page: Any) -> list[str]:
    """The elements that stick out past the right edge of the screen (for the failure message)."""
    return list(
        page.evaluate(
            """(width) => {
                const out = [];
                for (const el of document.querySelectorAll("main *, header *")) {
                    const box = el.getBoundingClientRect();
                    if (box.right > width + 1 && box.width > 0) {
                        let inScroller = false;
                        for (let p = el.parentElement; p; p = p.parentElement) {
                            const style = getComputedStyle(p);
                            if (["auto", "scroll", "hidden", "clip"].includes(style.overflowX) &&
                                p.getBoundingClientRect().right <= width + 1) { inScroller = true; break; }
                        }
                        if (!inScroller) {
                            const name = el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
                                (el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "");
                            out.push(`${name} (right edge ${Math.round(box.right)}px)`);
                        }
                    }
                }
                return out.slice(0, 12);
            }""",
            WIDTH,
        )
    )


@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_no_page_is_wider_than_a_phone(
    live_server: Any,
    browser: Any,
    team: Team,
    run_file: bytes,  # noqa: F811
    tmp_path: Path,
    locale: str,
) -> None:
    site = populated_site(team, run_file, tmp_path)
    base = live_server.url
    context = phone(browser, locale)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        hold_live_pages(page)
        page.goto(f"{base}/accounts/login/")
        too_wide = {}
        if page_width(page) > WIDTH:
            too_wide["sign-in"] = wider_than_the_screen(page)
        found = {"sign-in": axe_violations(page)}
        sign_in(page, base)
        for name, path in site.pages.items():
            response = page.goto(f"{base}{path}")
            assert response is not None and response.status == 200, path
            page.wait_for_load_state("load")
            width = page_width(page)
            if width > WIDTH:
                too_wide[f"{name} ({width}px)"] = wider_than_the_screen(page)
            found[name] = axe_violations(page)
    finally:
        context.close()
    assert not too_wide, "wider than the screen:\n" + "\n".join(
        f"{name}: {', '.join(elements)}" for name, elements in too_wide.items()
    )
    blocking = {name: [v for v in vs if v["impact"] in BLOCKING] for name, vs in found.items()}
    blocking = {name: vs for name, vs in blocking.items() if vs}
    assert not blocking, f"axe on a phone ({locale}): serious or critical violations\n{describe(blocking)}"


def test_the_menu_button_opens_and_closes_the_navigation(live_server: Any, browser: Any, team: Team) -> None:
    base = live_server.url
    context = phone(browser, "en-US")
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        sign_in(page, base)
        header = page.locator("header.topbar")
        button = page.locator("header.topbar button[aria-controls]")
        nav = page.locator("nav.mainnav")

        assert header.bounding_box()["height"] < 0.2 * HEIGHT
        assert button.is_visible() and button.get_attribute("aria-expanded") == "false"
        assert not nav.is_visible()

        # The first tab stop skips to the content; the menu button comes right after the brand.
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.getAttribute('href')") == "#content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "content"

        page.evaluate("document.activeElement.blur(); window.scrollTo(0, 0)")
        button.focus()
        page.keyboard.press("Enter")
        assert button.get_attribute("aria-expanded") == "true"
        assert nav.is_visible()
        page.keyboard.press("Tab")  # into the menu: its first link
        assert page.evaluate("document.activeElement.closest('nav') !== null")
        page.click("nav.mainnav >> text=Jobs")
        page.wait_for_url(f"{base}/jobs/")

        button.click()
        assert nav.is_visible()
        page.keyboard.press("Escape")
        assert button.get_attribute("aria-expanded") == "false"
        assert not nav.is_visible()
        assert page.evaluate("document.activeElement.getAttribute('aria-controls')") is not None
        assert header.bounding_box()["height"] < 0.2 * HEIGHT
    finally:
        context.close()


def test_a_wide_screen_shows_the_navigation_without_a_menu_button(
    live_server: Any, page: Any, team: Team
) -> None:
    sign_in(page, live_server.url)
    assert page.locator("nav.mainnav").is_visible()
    assert not page.locator("header.topbar button[aria-controls]").is_visible()


@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_a_jobs_state_and_progress_come_before_its_logs(
    live_server: Any,
    browser: Any,
    team: Team,
    run_file: bytes,  # noqa: F811
    tmp_path: Path,
    locale: str,
) -> None:
    site = populated_site(team, run_file, tmp_path)
    base = live_server.url
    context = phone(browser, locale)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        hold_live_pages(page)
        sign_in(page, base)
        page.goto(f"{base}{site.pages['job-running']}")
        page.wait_for_load_state("load")
        for selector in ("#job-live .pagehead .badge", "#facts", f'[data-progress-for="{site.running.pk}"]'):
            box = page.locator(selector).first.bounding_box()
            assert box is not None, selector
            assert box["y"] < HEIGHT, f"{selector} starts at {box['y']:.0f}px, below the first screen"
        logs = page.locator("#log-stdout").bounding_box()
        progress = page.locator(f'[data-progress-for="{site.running.pk}"]').bounding_box()
        assert progress["y"] < logs["y"]
        assert page_width(page) <= WIDTH

        page.goto(f"{base}{site.pages['job-failed']}")
        diagnosis = page.locator("#diagnosis").bounding_box()
        facts = page.locator("#facts").bounding_box()
        logs = page.locator("#log-stdout").bounding_box()
        assert diagnosis["y"] < HEIGHT and diagnosis["y"] < logs["y"] and facts["y"] < logs["y"]
    finally:
        context.close()


@pytest.mark.parametrize(("locale", "folder"), [("ja-JP", ARTIFACTS), ("en-US", ARTIFACTS / "en")])
def test_phone_screenshots(
    live_server: Any,
    browser: Any,
    team: Team,
    run_file: bytes,  # noqa: F811
    tmp_path: Path,
    locale: str,
    folder: Path,
) -> None:
    site = populated_site(team, run_file, tmp_path)
    base = live_server.url
    context = phone(browser, locale)
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        hold_live_pages(page)
        sign_in(page, base)
        folder.mkdir(parents=True, exist_ok=True)
        for name, key in (("overview", "overview"), ("job", "job-running"), ("cluster", "cluster")):
            page.goto(f"{base}{site.pages[key]}")
            page.wait_for_load_state("load")
            page.wait_for_timeout(500)  # charts draw after their data arrives
            shot = page.screenshot(path=str(folder / f"mobile-{name}.png"), full_page=False)
            assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        context.close()
