"""Graceful stop of real processes: an API replica finishes its requests, a worker its job."""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path

import pytest
import redis
import requests

from deploy.launcher import stack, wait_until
from shared.contract import AnalysisOptions, ExtractJob, ExtractResult, ImageResult, ModelRef, RenderSettings
from shared.jobs import JobStatus, JobStore, WorkerRegistry
from shared.queue import EXTRACT_TASK, create_celery, queue_lanes
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS
from tests.client import extract


def job_ids(client: redis.Redis) -> list[str]:
    keys = client.scan_iter(match="facerest:job:*")
    return [k.decode().rsplit(":", 1)[1] for k in keys if k.count(b":") == 2]


def test_sigterm_on_api_replica_refuses_new_requests_and_finishes_the_one_in_flight(tmp_path: Path) -> None:
    with stack(tmp_path) as system:
        api = system.start_api(processes=1)
        url = api.url
        kept_alive = requests.Session()
        assert kept_alive.get(f"{url}/health", timeout=2).status_code == 200

        # No worker runs: the synchronous request waits for a job that the test finishes itself.
        answers: list[requests.Response] = []
        photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
        request = threading.Thread(target=lambda: answers.append(extract(url, [photo])))
        request.start()
        client = system.client()
        wait_until(lambda: bool(job_ids(client)), 10, "queued job")
        (job_id,) = job_ids(client)

        api.process.send_signal(signal.SIGTERM)
        # A request on a kept-alive connection (how HAProxy checks) still gets an answer: 503.
        statuses: list[int] = []

        def draining() -> bool:
            statuses.append(kept_alive.get(f"{url}/health", timeout=1).status_code)
            return statuses[-1] == 503

        wait_until(draining, 5, "draining answer")
        with pytest.raises(requests.RequestException):
            requests.get(f"{url}/health", timeout=1)
        assert api.process.poll() is None, "the replica quit with a request in flight"

        model = ModelRef("test", "test", "1", "MIT")
        no_faces = ExtractResult([ImageResult("ok", 1.0, (1, 1))], "test", 1.0, model, model)
        JobStore(client, "facerest", 60).finish(job_id, no_faces)
        request.join(10)
        assert [(r.status_code, r.json()) for r in answers] == [(200, [[]])]
        assert api.process.wait(15) == 0


def test_sigterm_on_worker_finishes_its_job_and_hands_back_the_queued_one(tmp_path: Path) -> None:
    with stack(tmp_path, concurrency="1", intra_op_threads="1") as system:
        worker = system.start_worker()
        client = system.client()
        (beat,) = WorkerRegistry(client, "facerest").online()
        # The heartbeat (what /ready reads) is written once the models are loaded.
        assert {model.key for model in beat.models} >= {"scrfd", "arcface"}

        settings = load_settings(redis_url=system.redis_url, concurrency=1)
        store = JobStore(client, settings.key_prefix, settings.result_ttl_s)
        celery = create_celery(settings)
        photo = GROUP_PHOTOS["players.jpg"].read_bytes()
        jobs = [uuid.uuid4().hex for _ in range(2)]
        lane = queue_lanes(settings)[1]  # an owner's lane other than the first
        for job_id in jobs:
            # A slow first job (many large images), so the stop arrives while it runs.
            job = ExtractJob([photo] * 8, AnalysisOptions(), request_id=job_id)
            store.create(job_id, job, RenderSettings(api_ver="1", landmarks=False, data_count=8), queue=lane)
            celery.send_task(EXTRACT_TASK, args=[job_id], task_id=job_id, queue=lane)
        wait_until(lambda: store.state(jobs[0]).status is JobStatus.RUNNING, 15, "first job running")

        worker.process.send_signal(signal.SIGTERM)
        wait_until(lambda: not WorkerRegistry(client, "facerest").online(), 5, "heartbeat removed")
        assert store.state(jobs[0]).status is JobStatus.RUNNING, "stopping should not wait for the heartbeat"
        assert worker.process.wait(60) == 0
        assert store.state(jobs[0]).status is JobStatus.DONE
        # The second job was never started: it is back in its lane for the next worker.
        assert store.state(jobs[1]).status is JobStatus.QUEUED
        assert client.llen(lane) == 1

        system.start_worker()
        wait_until(lambda: store.state(jobs[1]).status is JobStatus.DONE, 60, "second job done")
