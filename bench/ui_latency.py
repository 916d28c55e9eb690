"""What a person waits on the web page: from choosing a photo to its faces drawn, in Debian's
chromium, side by side with the same /extract request sent from Python.

python -m bench.ui_latency                  # starts its own Redis, worker and API
python -m bench.ui_latency --url http://localhost:18081
"""

from __future__ import annotations

import argparse
import base64
import shutil
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from playwright.sync_api import expect, sync_playwright

from deploy.launcher import running_system
from testkit.photos import GROUP_PHOTOS

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def api_url(url: str | None) -> Iterator[str]:
    if url:
        yield url.rstrip("/")
        return
    with running_system() as running:
        yield running.api_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running facerest API; default: start one")
    parser.add_argument("--photo", default="t1.jpg", choices=sorted(GROUP_PHOTOS))
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    path = GROUP_PHOTOS[args.photo]
    # The page's default request for one photo.
    body = {
        "images": {"data": [base64.b64encode(path.read_bytes()).decode()]},
        "api_ver": "2",
        "threshold": 0.6,
        "max_size": [640, 640],
        "return_landmarks": True,
        "extract_ga": False,
    }
    executable = shutil.which("chromium")
    assert executable, "chromium is missing: scripts/install-system-deps.sh --browser installs it"
    with api_url(args.url) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/ui")
        expect(page.locator("body")).to_have_attribute("data-ready", "true")
        in_page: list[float] = []
        direct: list[float] = []
        for run in range(args.runs + 2):  # the first two warm up
            page.click("#clear")
            page.set_input_files("#files", str(path))
            card = page.locator(".photo[data-ms]")
            expect(card).to_have_count(1, timeout=60_000)
            shown = float(card.get_attribute("data-ms") or "nan")
            start = time.perf_counter()
            requests.post(f"{url}/extract", json=body, timeout=60).raise_for_status()
            sent = (time.perf_counter() - start) * 1000
            if run >= 2:
                in_page.append(shown)
                direct.append(sent)
        faces = page.locator(".photo").get_attribute("data-faces")
        browser.close()
    page_ms, direct_ms = statistics.median(in_page), statistics.median(direct)
    print(f"{args.photo}: {faces} faces, {args.runs} runs, alternating")
    print(f"page, photo chosen to faces drawn: median {page_ms:.1f} ms (max {max(in_page):.1f})")
    print(f"Python, the same /extract request:  median {direct_ms:.1f} ms (max {max(direct):.1f})")
    print(f"page / Python: {page_ms / direct_ms:.2f}x")


if __name__ == "__main__":
    main()
