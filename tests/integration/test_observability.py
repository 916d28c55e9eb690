"""GET /metrics (summed over gunicorn's processes), request ids into the worker's JSON logs, Flower."""

from __future__ import annotations

import re
import time

import orjson
import requests

from deploy.launcher import Stack, wait_until
from testkit.photos import GROUP_PHOTOS
from tests.client import b64, extract

PHOTO = GROUP_PHOTOS["t1.jpg"].read_bytes()


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name + ("{" if labels else " ")):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0])) if labels else {}
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_of_every_gunicorn_process(api: str) -> None:
    before = requests.get(f"{api}/metrics", timeout=10).text
    health_before = _sample(before, "facerest_http_requests_total", route="/health", status="200")
    for _ in range(40):
        requests.get(f"{api}/health", timeout=10)
    # Two gunicorn processes answer; every scrape, whichever serves it, must see all 40 requests.
    for _ in range(6):
        text = requests.get(f"{api}/metrics", timeout=10).text
        assert (
            _sample(text, "facerest_http_requests_total", route="/health", status="200") >= health_before + 40
        )


def test_metrics_cover_latency_images_faces_and_queue(api: str) -> None:
    faces = len(extract(api, [PHOTO, PHOTO]).json()[0])
    requests.post(f"{api}/extract", json={"images": {"data": ["###"]}}, timeout=30)
    response = requests.get(f"{api}/metrics", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    text = response.text
    assert _sample(text, "facerest_http_requests_total", route="/extract", method="POST", status="200") >= 1
    assert _sample(text, "facerest_http_requests_total", route="/extract", method="POST", status="422") >= 1
    assert _sample(text, "facerest_http_request_duration_seconds_count", route="/extract", method="POST") >= 2
    assert _sample(text, "facerest_http_request_duration_seconds_bucket", route="/extract", le="+Inf") >= 2
    assert _sample(text, "facerest_request_images_bucket", le="2.0") >= 1
    assert _sample(text, "facerest_request_faces_sum") >= 2 * faces
    assert "facerest_queue_depth 0.0" in text
    assert "facerest_workers_online 1.0" in text
    # Unknown paths are counted under one label, not one series per path.
    requests.get(f"{api}/no/such/path/123", timeout=10)
    text = requests.get(f"{api}/metrics", timeout=10).text
    assert "/no/such/path" not in text
    assert _sample(text, "facerest_http_requests_total", route="unmatched", status="404") >= 1


def _worker_log_lines(system: Stack, job_id: str, logger: str = "facerest.worker") -> list[dict[str, object]]:
    """The worker's JSON lines about a job from one logger (ours, or Celery's, e.g. celery.app.trace)."""
    worker = system.service("worker")
    lines = []
    for line in worker.output().splitlines():
        if line.startswith("{") and job_id in line:
            entry = orjson.loads(line)
            if entry["logger"] == logger:
                lines.append(entry)
    return lines


def test_request_id_comes_back_and_follows_the_job_into_the_worker_log(api: str, system: Stack) -> None:
    body = {"images": {"data": [b64(PHOTO)]}, "async": True}
    response = requests.post(
        f"{api}/extract", json=body, headers={"X-Request-ID": "trace-4711.a"}, timeout=30
    )
    assert response.status_code == 202 and response.headers["X-Request-ID"] == "trace-4711.a"
    job_id = response.json()["id"]

    def logged_done() -> bool:
        return any("done in" in str(line["msg"]) for line in _worker_log_lines(system, job_id))

    wait_until(logged_done, 30, "worker log line")
    lines = _worker_log_lines(system, job_id)
    assert {line["request_id"] for line in lines} == {"trace-4711.a"}
    assert len(lines) >= 2 and all(line["job_id"] == job_id for line in lines)
    # Celery's own line about the task carries the ids too.
    wait_until(lambda: bool(_worker_log_lines(system, job_id, "celery.app.trace")), 10, "Celery's line")
    (celery_line,) = _worker_log_lines(system, job_id, "celery.app.trace")
    assert "succeeded" in str(celery_line["msg"])
    assert (celery_line["job_id"], celery_line["request_id"]) == (job_id, "trace-4711.a")


def test_request_id_is_made_when_missing_or_unsafe(api: str) -> None:
    made = requests.get(f"{api}/health", timeout=10).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    unsafe = requests.get(f"{api}/health", headers={"X-Request-ID": "a b\tc" + "x" * 200}, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe.headers["X-Request-ID"])
    errors = requests.get(f"{api}/nope", headers={"X-Request-ID": "err-1"}, timeout=10)
    assert errors.status_code == 404 and errors.headers["X-Request-ID"] == "err-1"


def test_api_logs_are_json_with_the_request_id(api: str, system: Stack) -> None:
    requests.get(f"{api}/ready", headers={"X-Request-ID": "log-check-99"}, timeout=10)
    apis = [s for s in system.services if s.role == "api"]

    def logged() -> bool:
        return any("log-check-99" in s.output() for s in apis)

    wait_until(logged, 10, "API access log")
    lines = [line for s in apis for line in s.output().splitlines()]
    (entry,) = [orjson.loads(line) for line in lines if "log-check-99" in line]
    assert entry["request_id"] == "log-check-99" and entry["msg"].startswith("GET /ready 200")
    assert entry["level"] == "INFO" and entry["status"] == 200


def test_flower_exports_worker_task_metrics(system: Stack, api: str) -> None:
    flower = system.start_flower().url
    photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    # Flower counts the task events it receives live; it may attach to the event stream a little
    # after /healthcheck answers, so send jobs until one is counted.
    deadline = time.monotonic() + 60
    succeeded = 0.0
    while succeeded < 1 and time.monotonic() < deadline:
        assert extract(api, [photo]).status_code == 200
        time.sleep(1)
        text = requests.get(f"{flower}/metrics", timeout=5).text
        succeeded = _sample(text, "flower_events_total", task="facerest.extract", type="task-succeeded")
    assert succeeded >= 1
    assert _sample(text, "flower_task_runtime_seconds_count", task="facerest.extract") >= 1
