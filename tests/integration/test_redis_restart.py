"""Redis restarts (append-only file on): no accepted job is lost; API and workers reconnect."""

from __future__ import annotations

from pathlib import Path

import requests

from deploy.launcher import stack, wait_until
from shared.queue import queue_depth, queue_lanes
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS
from tests.client import extract
from tests.faces import FACES_IN

PHOTO = GROUP_PHOTOS["yaoming.jpg"].read_bytes()


def test_queued_jobs_survive_a_redis_restart_and_everyone_reconnects(tmp_path: Path) -> None:
    with stack(tmp_path) as running:
        api_service = running.start_api()
        api = running.api_url
        ids = [extract(api, [PHOTO], **{"async": True}).json()["id"] for _ in range(5)]

        running.stop_redis()
        down = extract(api, [PHOTO], **{"async": True})
        assert down.status_code == 503 and down.json()["code"] == "unavailable"
        assert requests.get(f"{api}/health", timeout=30).status_code == 503
        running.restart_redis()
        lanes = queue_lanes(load_settings())
        assert queue_depth(running.client(), lanes) == 5  # replayed from the append-only file

        worker = running.start_worker()

        def all_done() -> bool:
            states = [requests.get(f"{api}/results/{i}", timeout=5).json() for i in ids]
            return all(
                s["status"] == "done" and len(s["result"][0]) == FACES_IN["yaoming.jpg"] for s in states
            )

        wait_until(all_done, 60, "jobs queued before the restart")

        # Restart again with the worker running: it and the API reconnect by themselves.
        running.stop_redis()
        running.restart_redis()
        wait_until(lambda: extract(api, [PHOTO], timeout=10).status_code == 200, 60, "service after restart")
        assert worker.process.poll() is None and api_service.process.poll() is None
        (faces,) = extract(api, [PHOTO]).json()
        assert len(faces) == FACES_IN["yaoming.jpg"]
