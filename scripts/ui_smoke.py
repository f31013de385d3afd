"""Open the Dagster UI in a real browser and screenshot the evaluate job's Launchpad.

Not part of the test suite and not in the lock: it needs Playwright (`uv pip install
playwright` into .venv) and a Chromium (Debian: `apt-get install chromium`; Playwright's own
browser download is not needed). Start the UI first (`make ui`), then:

    .venv/bin/python scripts/ui_smoke.py [--url http://127.0.0.1:3000] [--out ui-shots]
        [--partition reference|smoke] [--sample-limit 0]

It follows the clicks the README documents: Jobs -> evaluate -> the arrow beside
"Materialize all" -> "Open launchpad" -> pick a partition, and screenshots each step. With
--sample-limit it also edits the config and clicks Materialize, to show what the UI answers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--out", type=Path, default=Path("ui-shots"))
    parser.add_argument("--partition", default="reference|smoke")
    parser.add_argument("--sample-limit", type=int, help="also launch with this sample_limit")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        def shot(name: str) -> None:
            page.wait_for_timeout(1500)  # let the UI settle
            page.screenshot(path=args.out / f"{name}.png")
            print(args.out / f"{name}.png")

        page.goto(f"{args.url}/locations/evals/jobs/evaluate", wait_until="networkidle")
        page.get_by_role("button", name="Materialize all").wait_for()
        shot("1-evaluate-job")
        page.locator("button:right-of(:text('Materialize all'))").first.click()
        shot("2-materialize-menu")
        page.get_by_text("Open launchpad").click()
        page.get_by_placeholder("Partition").fill(args.partition)
        page.wait_for_timeout(1000)
        page.keyboard.press("Enter")
        page.get_by_text("sample_limit: null").wait_for()
        shot("3-launchpad-prefilled")

        if args.sample_limit is not None:
            page.get_by_text("sample_limit: null").click()
            page.keyboard.press("End")
            for _ in "null":
                page.keyboard.press("Backspace")
            page.keyboard.type(str(args.sample_limit))
            page.locator("[role=dialog] button", has_text="Materialize").last.click()
            shot("4-after-materialize")
        browser.close()


if __name__ == "__main__":
    main()
