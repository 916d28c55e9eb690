"""Overload: a full queue answers 503 with Retry-After at once; synchronous waits are bounded."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from deploy.launcher import Stack, stack, wait_until
from shared.contract import AnalysisOptions, ErrorInfo, ExtractJob, RenderSettings
from shared.jobs import JobStatus, JobStore
from shared.queue import EXTRACT_TASK, create_celery, lane_for, queue_lanes, waiting_jobs
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS
from tests.client import b64, extract

PHOTO = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
FLOOD, OTHER = "flood-key", "other-key"
UNREAD_QUEUE = "facerest-unread"


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


@pytest.fixture(scope="module")
def shares_api(system: Stack) -> Iterator[str]:
    """An API on the session's system whose jobs go to a queue (all its lanes) no worker reads: they stay
    unfinished, holding their owners' shares, for as long as the test needs."""
    env = {
        "FACEREST_API_KEYS": f"{FLOOD},{OTHER}",
        "FACEREST_QUEUE": UNREAD_QUEUE,
        "FACEREST_MAX_QUEUED_PER_KEY": "2",
        "FACEREST_MAX_QUEUE_DEPTH": "3",
        "FACEREST_MIN_DET_THRESHOLD": "0.4",
    }
    service = system.start_api(extra_env=env)
    yield service.url
    service.stop()
    with system.client() as client:  # finish the jobs, which releases their shares
        store = JobStore(client, system.env.get("FACEREST_KEY_PREFIX", "facerest"), 60)
        lanes = queue_lanes(load_settings(queue=UNREAD_QUEUE))
        for job_id in waiting_jobs(client, lanes):
            store.finish(job_id, ErrorInfo("job_failed", "test over"))
        client.delete(*lanes)


def _async(api: str, key: str) -> requests.Response:
    body = {"images": {"data": [b64(PHOTO)]}, "async": True}
    return requests.post(f"{api}/extract", json=body, headers={"X-API-Key": key}, timeout=30)


def test_one_key_at_its_share_is_refused_with_429_while_another_key_is_served(shares_api: str) -> None:
    assert [_async(shares_api, FLOOD).status_code for _ in range(2)] == [202, 202]
    refused = _async(shares_api, FLOOD)
    assert refused.status_code == 429, refused.text
    assert refused.json()["code"] == "too_many_jobs"
    assert refused.headers["Retry-After"] == str(refused.json()["retry_after_s"])
    assert "2 unfinished jobs" in refused.json()["message"]
    assert "max_queued_per_key=2" in refused.json()["message"]
    # A detection threshold below min_det_threshold is refused up front for recognition.
    body = {"images": {"data": [b64(PHOTO), b64(PHOTO)]}, "det_threshold": 0.1}
    low = requests.post(f"{shares_api}/verify", json=body, headers={"X-API-Key": OTHER}, timeout=30)
    assert low.status_code == 422
    assert low.json() == {
        "code": "validation_error",
        "message": "det_threshold=0.1 is below min_det_threshold=0.4",
    }

    assert _async(shares_api, OTHER).status_code == 202  # the other key's share is its own

    # The queue is full now (max_queue_depth=3): a large body refused before the app read it still
    # gets its 503, not a connection reset mid-upload (api/submit.py discard_body).
    big = {"images": {"data": [base64.b64encode(bytes(4_000_000)).decode()]}, "async": True}
    headers = {"X-API-Key": OTHER, "Connection": "close"}
    for _ in range(3):
        overloaded = requests.post(f"{shares_api}/extract", json=big, headers=headers, timeout=30)
        assert overloaded.status_code == 503 and overloaded.json()["code"] == "overloaded"


def test_a_flood_in_one_lane_waits_its_turn_behind_another_owners_job(system: Stack) -> None:
    """Stochastic fair queueing: one owner's 20 jobs and then another owner's one appear in their
    lanes at once; the worker takes the non-empty lanes in turn, so the other owner's job starts
    among the first, not after the flood (in one lane, arrival order, it would start last)."""
    settings = load_settings(redis_url=system.redis_url)
    flood_lane, other_lane = lane_for(settings, "addr:flood"), lane_for(settings, "addr:other")
    assert flood_lane != other_lane
    celery = create_celery(settings)
    render = RenderSettings(api_ver="2", landmarks=False, data_count=1)
    flood, other = [uuid.uuid4().hex for _ in range(20)], uuid.uuid4().hex
    staging = {flood_lane: f"{UNREAD_QUEUE}-flood", other_lane: f"{UNREAD_QUEUE}-other"}
    with system.client() as client:
        store = JobStore(client, settings.key_prefix, 60)
        for job_id, lane in [*((job_id, flood_lane) for job_id in flood), (other, other_lane)]:
            store.create(job_id, ExtractJob([PHOTO], AnalysisOptions(), job_id), render, queue=lane)
            celery.send_task(EXTRACT_TASK, args=[job_id], task_id=job_id, queue=staging[lane])
        # Both lanes fill in one transaction, as if both owners had queued while the worker was busy.
        move = client.pipeline(transaction=True)
        for lane, staged in staging.items():
            for _ in range(client.llen(staged)):
                move.rpoplpush(staged, lane)
        move.execute()
        jobs = [*flood, other]
        wait_until(lambda: all(store.state(j).status is JobStatus.DONE for j in jobs), 60, "the jobs")
        started = {job_id: store.state(job_id).started or 0.0 for job_id in jobs}
    ahead = sum(started[job_id] < started[other] for job_id in flood)
    assert ahead < 10, f"{ahead} of the flood's 20 jobs started before the other owner's"
