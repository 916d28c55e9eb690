"""Overload: a full queue answers 503 with Retry-After at once; synchronous waits are bounded."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from deploy.launcher import stack, wait_until
from testkit.photos import GROUP_PHOTOS
from tests.client import extract

PHOTO = GROUP_PHOTOS["yaoming.jpg"].read_bytes()


def test_flood_over_a_tiny_queue_limit_gets_503_with_retry_after(tmp_path: Path) -> None:
    with stack(tmp_path, max_queue_depth="3", retry_after_s="7", sync_timeout_s="1") as running:
        api_service = running.start_api()  # no worker yet: queued jobs stay queued
        api = running.api_url

        # A synchronous wait ends after sync_timeout_s with 504 and the job id to poll.
        started = time.monotonic()
        waited = extract(api, [PHOTO])
        assert waited.status_code == 504 and waited.json()["status_url"].startswith("/results/")
        assert time.monotonic() - started < 5

        accepted = [extract(api, [PHOTO], **{"async": True}) for _ in range(2)]
        assert [r.status_code for r in accepted] == [202, 202]

        started = time.monotonic()
        refused = extract(api, [PHOTO], **{"async": True})
        assert time.monotonic() - started < 1  # refused at once, not queued
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "7"
        assert refused.json()["code"] == "overloaded"
        assert "max_queue_depth=3" in refused.json()["message"]

        with ThreadPoolExecutor(16) as pool:
            flood = list(pool.map(lambda _: extract(api, [PHOTO], **{"async": True}), range(64)))
        assert {r.status_code for r in flood} == {503}
        assert all(r.headers["Retry-After"] == "7" for r in flood)
        assert api_service.process.poll() is None
        assert requests.get(f"{api}/health", timeout=5).status_code == 200

        # A worker drains the queue; every accepted job completes and new work is taken again.
        running.start_worker()
        ids = [waited.json()["id"]] + [r.json()["id"] for r in accepted]

        def all_done() -> bool:
            states = [requests.get(f"{api}/results/{i}", timeout=5).json()["status"] for i in ids]
            return states == ["done"] * len(ids)

        wait_until(all_done, 60, "accepted jobs")
        assert extract(api, [PHOTO], **{"async": True}).status_code == 202
