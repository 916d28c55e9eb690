"""A job that keeps losing its worker is retried a bounded number of times, then reported failed."""

from __future__ import annotations

from pathlib import Path

import requests

from deploy.launcher import stack, wait_until
from testkit.photos import GROUP_PHOTOS
from tests.client import extract

PHOTO = GROUP_PHOTOS["t1.jpg"].read_bytes()


def _state(api: str, job_id: str) -> dict[str, object]:
    state: dict[str, object] = requests.get(f"{api}/results/{job_id}", timeout=5).json()
    return state


def test_job_killing_its_worker_every_time_ends_failed(tmp_path: Path) -> None:
    # The visibility timeout stays at its default: the new worker's reaper re-queues the job.
    with stack(tmp_path, concurrency="1", max_attempts="1") as running:
        first = running.start_worker()
        running.start_api()
        api = running.api_url
        job_id = extract(api, [PHOTO] * 24, **{"async": True}).json()["id"]
        wait_until(lambda: _state(api, job_id)["status"] == "running", 30, "job start")
        first.kill()  # the job "crashes" its worker

        running.start_worker()
        wait_until(lambda: _state(api, job_id)["status"] == "failed", 60, "job failed")
        state = _state(api, job_id)
        assert state["attempts"] == 2
        error = state["error"]
        assert isinstance(error, dict) and error["code"] == "too_many_attempts"
        assert "max_attempts=1" in error["message"]
        # The worker that refused the job is alive and serves new work.
        assert extract(api, [GROUP_PHOTOS["yaoming.jpg"].read_bytes()]).status_code == 200


def test_job_at_its_attempt_limit_is_failed_without_running(tmp_path: Path) -> None:
    with stack(tmp_path, max_attempts="3") as running:
        running.start_api()
        api = running.api_url
        job_id = extract(api, [PHOTO], **{"async": True}).json()["id"]
        # As if three workers had died on it already.
        running.client().hset(f"facerest:job:{job_id}", "attempts", 3)
        running.start_worker()
        wait_until(lambda: _state(api, job_id)["status"] == "failed", 30, "job failed")
        state = _state(api, job_id)
        assert state["attempts"] == 4 and state["started"] is None
        assert isinstance(state["error"], dict) and state["error"]["code"] == "too_many_attempts"
        ok = extract(api, [PHOTO], **{"async": True}).json()["id"]
        wait_until(lambda: _state(api, ok)["status"] == "done", 30, "next job")
        assert _state(api, ok)["attempts"] == 1
