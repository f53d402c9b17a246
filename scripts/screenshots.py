"""Take screenshots of the main pages of a running portal for the docs.

    make demo            # in one terminal
    .venv/bin/python scripts/screenshots.py --base http://127.0.0.1:8000 --out docs/screenshots

Uses Debian's chromium (apt-get install chromium) through Playwright; no browser is downloaded.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from playwright.sync_api import sync_playwright

PAGES = [
    ("overview", "/"),
    ("subteam", "/subteams/post-training/"),
    ("task-board", "/tasks/?subteam=post-training"),
    ("goal", None),  # the first project goal, found from the overview
    ("timeline", "/timeline/"),
    ("members", "/members/"),
    ("member", None),  # the signed-in user's profile
    ("api-docs", "/api/docs/"),
    ("jobs", "/jobs/"),
    ("job", None),  # the first job in the list
    ("job-new", "/jobs/new/"),
    ("job-train", "/jobs/train/?kind=sft"),
    ("pipeline-new", "/pipelines/new/"),
    ("pipelines", "/pipelines/"),
    ("pipeline", None),  # the first pipeline
    ("cluster", None),  # the first cluster
    ("gpus", "/gpus/"),
    ("gpus-new", "/gpus/new/"),
    ("gpus-calendar", "/gpus/calendar/"),
    ("leaderboard", "/leaderboard/"),
    ("datasets", "/datasets/"),
    ("sweep-new", "/sweeps/new/?kind=sft"),
    ("sweep", None),  # the newest sweep
    ("lineage", None),  # the lineage of that sweep's best run
    ("compare", None),  # that sweep's first two runs
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default="http://127.0.0.1:8000")
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default=os.environ.get("DEMO_PASSWORD", "demo"))
    parser.add_argument("--language", default="ja", choices=["ja", "en"])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    if not chromium:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        context = browser.new_context(
            viewport={"width": 1440, "height": 1000}, locale=args.language, device_scale_factor=1
        )
        page = context.new_page()
        page.goto(f"{args.base}/accounts/login/")
        page.screenshot(path=out / "sign-in.png")
        page.fill("#id_username", args.user)
        page.fill("#id_password", args.password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{args.base}/")
        sweep_path = ""
        for name, path in PAGES:
            if name == "goal":
                page.goto(f"{args.base}/")
                path = page.locator(".goalcard h3 a").first.get_attribute("href")
            elif name == "member":
                path = page.locator("a.me").get_attribute("href")
            elif name == "job":
                page.goto(f"{args.base}/jobs/")
                links = page.locator("main table a[href^='/jobs/']")
                if links.count() == 0:
                    continue
                path = links.first.get_attribute("href")
            elif name == "pipeline":
                page.goto(f"{args.base}/pipelines/")
                links = page.locator("main table a[href^='/pipelines/']")
                if links.count() == 0:
                    continue
                path = links.first.get_attribute("href")
            elif name == "cluster":
                page.goto(f"{args.base}/clusters/")
                links = page.locator("main a[href^='/clusters/']")
                if links.count() == 0:
                    continue
                path = links.first.get_attribute("href")
            elif name == "sweep":
                page.goto(f"{args.base}/sweeps/")
                links = page.locator("main table a[href^='/sweeps/']")
                if links.count() == 0:
                    continue
                path = links.first.get_attribute("href")
                sweep_path = path
            elif name in ("lineage", "compare"):
                if not sweep_path:
                    continue
                page.goto(f"{args.base}{sweep_path}")
                if name == "lineage":
                    links = page.locator("[data-testid=sweep-best] a[href^='/lineage/']")
                    if links.count() == 0:
                        continue
                    path = links.first.get_attribute("href")
                else:
                    ids = page.locator("[data-testid=sweep-table] input[name=jobs]")
                    if ids.count() < 2:
                        continue
                    path = f"/compare/?jobs={ids.nth(0).get_attribute('value')}&jobs={ids.nth(1).get_attribute('value')}"
            page.goto(f"{args.base}{path}")
            page.wait_for_load_state("load")
            page.wait_for_timeout(
                1500 if name in ("job", "sweep", "compare") else 500
            )  # charts draw after their data arrives
            # A job's page ends with its sbatch script, which carries the cluster's environment preamble
            # (paths of the machine the demo runs on): only the first screen, and its charts apart.
            page.screenshot(
                path=out / f"{name}.png",
                full_page=name not in ("timeline", "members", "api-docs", "job"),
            )
            print(f"{name}: {out / (name + '.png')}")
            panel = page.locator(".metrics-panel")
            if name == "job" and panel.count():
                panel.first.screenshot(path=out / "job-metrics.png")
                print(f"job-metrics: {out / 'job-metrics.png'}")
        browser.close()


if __name__ == "__main__":
    main()
