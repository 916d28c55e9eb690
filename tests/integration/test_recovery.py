"""A job whose worker is killed mid-way is run again by another worker (late acknowledgement)."""

from __future__ import annotations

import time
from pathlib import Path

import requests

from bench.photos import GROUP_PHOTOS
from deploy.launcher import stack, wait_until
from tests.client import extract
from tests.faces import FACES_IN


def test_job_survives_kill_9_of_its_worker(tmp_path: Path) -> None:
    with stack(tmp_path, visibility_timeout_s="3", concurrency="1") as running:
        first = running.start_worker()
        running.start_api()
        api = running.api_url
        photos = [GROUP_PHOTOS["t1.jpg"].read_bytes()] * 24  # a few seconds of work
        accepted = extract(api, photos, **{"async": True}).json()
        status_url = f"{api}/results/{accepted['id']}"
        wait_until(lambda: requests.get(status_url, timeout=5).json()["status"] == "running", 30, "job start")

        first.kill()
        assert requests.get(status_url, timeout=5).json()["status"] == "running"
        running.start_worker()

        deadline = time.monotonic() + 60
        state = requests.get(status_url, timeout=5).json()
        while state["status"] != "done" and time.monotonic() < deadline:
            time.sleep(0.2)
            state = requests.get(status_url, timeout=5).json()
        assert state["status"] == "done", state
        assert state["worker"] != first.name
        images = state["result"]
        assert len(images) == 24 and all(len(faces) == FACES_IN["t1.jpg"] for faces in images)
