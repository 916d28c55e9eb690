"""A killed worker's job runs again on the next worker; a job that keeps losing its worker is
retried a bounded number of times, then reported failed; the worker that refuses it serves on.

The visibility timeout stays at its default (300 s): it is not what brings the jobs back. The new
worker's reaper sees the dead one's heartbeat expire (heartbeat_ttl_s, 6 s by default) and queues
its jobs again; a later redelivery of the dead worker's own message is dropped. Recovery under
load, with its time bounds, is the cluster test's (test_cluster.py).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, cast

import requests

from deploy.launcher import stack, wait_until
from shared.contract import worker_id
from testkit.photos import GROUP_PHOTOS
from tests.client import extract
from tests.faces import FACES_IN

MAX_ATTEMPTS = 2
# 24 copies of t1.jpg: a few seconds of work on one thread, so that a kill lands mid-job.
SLOW = [GROUP_PHOTOS["t1.jpg"].read_bytes()] * 24
QUICK = [GROUP_PHOTOS["yaoming.jpg"].read_bytes()]


def state(api: str, job_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], requests.get(f"{api}/results/{job_id}", timeout=5).json())


def has_status(api: str, job_id: str, status: str) -> bool:
    return bool(state(api, job_id)["status"] == status)


def test_a_job_survives_kill_9_of_its_worker_and_is_failed_once_it_used_up_max_attempts(
    tmp_path: Path,
) -> None:
    with stack(tmp_path, concurrency="1", max_attempts=str(MAX_ATTEMPTS)) as running:
        first = running.start_worker()
        running.start_api()
        api = running.api_url

        # Killed mid-job, the job runs again on the next worker and completes there.
        survivor = extract(api, SLOW, **{"async": True}).json()["id"]
        wait_until(lambda: state(api, survivor)["status"] == "running", 30, "job start")
        (victim,) = [w.name for w in running.workers().online()]
        first.kill()
        assert state(api, survivor)["status"] == "running"
        second = running.start_worker()
        wait_until(lambda: state(api, survivor)["status"] == "done", 60, "job done elsewhere")
        done = state(api, survivor)
        assert done["worker"] != worker_id(victim) and done["attempts"] == 2
        assert len(done["result"]) == 24
        assert all(len(faces) == FACES_IN["t1.jpg"] for faces in done["result"])

        # A job on its last attempt that loses its worker again is failed, not run a third time.
        doomed = extract(api, SLOW, **{"async": True}).json()["id"]
        wait_until(lambda: state(api, doomed)["status"] == "running", 30, "second job start")
        running.client().hset(f"facerest:job:{doomed}", "attempts", MAX_ATTEMPTS)  # died once before
        second.kill()
        # Queued while no worker runs, a job already delivered max_attempts times (as if as many
        # workers had died on it) is failed without running.
        spent = extract(api, QUICK, **{"async": True}).json()["id"]
        running.client().hset(f"facerest:job:{spent}", "attempts", MAX_ATTEMPTS)

        running.start_worker()
        for job_id in (doomed, spent):
            wait_until(partial(has_status, api, job_id, "failed"), 60, "job failed")
            failed = state(api, job_id)
            assert failed["attempts"] == MAX_ATTEMPTS + 1
            assert failed["started"] is None  # the delivery over the limit did not run it
            error = failed["error"]
            assert isinstance(error, dict) and error["code"] == "too_many_attempts"
            assert f"max_attempts={MAX_ATTEMPTS}" in error["message"]

        # The worker that refused them is alive and serves new work, on its first attempt.
        fresh = extract(api, QUICK, **{"async": True}).json()["id"]
        wait_until(lambda: state(api, fresh)["status"] == "done", 30, "next job")
        assert state(api, fresh)["attempts"] == 1
        (faces,) = state(api, fresh)["result"]
        assert len(faces) == FACES_IN["yaoming.jpg"]
