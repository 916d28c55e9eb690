"""/health, /ready, /info, the API docs, and Flower's view of the workers and tasks."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis
import requests

from deploy.launcher import Stack, wait_until
from shared.settings import SettingsError
from testkit.photos import GROUP_PHOTOS
from tests.client import extract
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M


def test_health_and_ready(api: str) -> None:
    health = requests.get(f"{api}/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok", "redis": "ok"}
    ready = requests.get(f"{api}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json()["workers"] == 1


def test_the_api_opens_no_gunicorn_control_socket(system: Stack) -> None:
    # One path per user for every replica of a host (api/gunicorn_conf.py): none is opened.
    log = system.service("api").output()
    assert "Booting worker" in log and "Control socket" not in log


def test_ready_is_503_without_workers(system: Stack) -> None:
    # An API of its own key prefix on the session's Redis: no worker has registered under it.
    alone = system.start_api(extra_env={"FACEREST_KEY_PREFIX": "facerest-no-workers"})
    try:
        response = requests.get(f"{alone.url}/ready", timeout=10)
        assert response.status_code == 503
        assert response.json() == {"ready": False, "workers": 0}
        # Redis answers an error (here WRONGTYPE: the workers' hash is a string): still a 503
        # a probe reads as "not ready", never a 500.
        client = redis.Redis.from_url(system.redis_url)
        client.set("facerest-no-workers:workers", "not a hash")
        try:
            broken = requests.get(f"{alone.url}/ready", timeout=10)
        finally:
            client.delete("facerest-no-workers:workers")
        assert broken.status_code == 503 and broken.headers["Retry-After"]
        assert broken.json()["ready"] is False and "WRONGTYPE" in broken.json()["redis"]
    finally:
        alone.stop()


def test_info_lists_workers_devices_models_and_licenses(api: str) -> None:
    info = requests.get(f"{api}/info", timeout=10).json()
    (worker,) = info["workers"]
    assert worker["device"] == "cpu"
    assert worker["name"].startswith("facerest-cpu-")
    hashes = {model["sha256"]: model for model in info["models"]["loaded"]}
    for spec in (SCRFD_500M, ARCFACE_MBF):
        assert hashes[spec.sha256]["license"] == spec.license
        assert hashes[spec.sha256]["name"] == spec.name
    assert info["queue_depth"] == 0
    # The limit /info reports is the one /extract enforces.
    limit = info["limits"]["max_images"]
    photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    refused = extract(api, [photo] * (limit + 1))
    assert refused.status_code == 413 and f"max_images={limit}" in refused.json()["message"]


def test_docs_are_served_offline_from_the_openapi_document(api: str) -> None:
    root = requests.get(f"{api}/", timeout=10, allow_redirects=False)
    assert root.status_code == 302 and root.headers["Location"].endswith("/ui")
    assert 'href="/docs"' in requests.get(f"{api}/ui", timeout=10).text
    docs = requests.get(f"{api}/docs", timeout=10)
    page = docs.text
    assert "/openapi.json" in page and "/docs/static/swagger-ui-bundle.js" in page
    # Its own CSP: the page shares its origin (and sessionStorage, with the API key) with /ui.
    policy = docs.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self' 'sha256-" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    bundle = requests.get(f"{api}/docs/static/swagger-ui-bundle.js", timeout=10)
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    spec = requests.get(f"{api}/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) >= {"/extract", "/results/{job_id}", "/info", "/health", "/ready"}
    props = spec["components"]["schemas"]["ExtractRequest"]["properties"]
    assert {"images", "max_size", "threshold", "api_ver", "async"} <= set(props)


def test_flower_lists_the_worker_and_finished_tasks(system: Stack, api: str) -> None:
    flower = system.start_flower().url
    auth = system.flower_credentials()
    photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    submitted: list[str] = []

    def task_finished() -> bool:
        # Flower sees only tasks sent after its event receiver connected: keep sending.
        submitted.append(extract(api, [photo], **{"async": True}).json()["id"])
        tasks = requests.get(f"{flower}/api/tasks", auth=auth, timeout=5).json()
        return any(tasks.get(job, {}).get("state") == "SUCCESS" for job in submitted)

    wait_until(task_finished, 60, "a finished task in Flower", interval_s=1.0)
    workers = requests.get(f"{flower}/api/workers", params={"refresh": "true"}, auth=auth, timeout=15)
    assert any(name.startswith("facerest-cpu-") for name in workers.json())


def test_flower_control_api_refuses_requests_without_credentials(system: Stack) -> None:
    flower = system.start_flower().url
    (name,) = [info.name for info in system.workers().online()]
    anonymous = [
        requests.get(f"{flower}/api/workers", timeout=10),
        requests.get(f"{flower}/api/tasks", timeout=10),
        requests.post(f"{flower}/api/worker/shutdown/{name}", timeout=10),
        requests.post(f"{flower}/api/worker/pool/shrink/{name}", timeout=10),
        requests.get(f"{flower}/api/workers", auth=("facerest", "wrong-password"), timeout=10),
        requests.get(f"{flower}/", timeout=10),
    ]
    assert [r.status_code for r in anonymous] == [401] * len(anonymous)
    time.sleep(1)  # a shutdown that got through would take the worker off within this
    assert [info.name for info in system.workers().online()] == [name]
    listed = requests.get(f"{flower}/api/workers", auth=system.flower_credentials(), timeout=15)
    assert listed.status_code == 200 and isinstance(listed.json(), dict)
    assert requests.get(f"{flower}/healthcheck", timeout=10).text == "OK"  # probes stay open


def test_flower_refuses_to_listen_beyond_loopback_without_auth(system: Stack) -> None:
    with pytest.raises(SettingsError, match="FACEREST_FLOWER_AUTH"):
        system.start_flower(host="0.0.0.0")
    # deploy.flower itself, started by hand without the setting, does not start either.
    env = {k: v for k, v in system.env.items() if k != "FACEREST_FLOWER_AUTH"}
    env["FACEREST_REDIS_URL"] = system.redis_url
    done = subprocess.run(
        [sys.executable, "-m", "deploy.flower", "--address=127.0.0.1", "--port=1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "FACEREST_FLOWER_AUTH is not set" in done.stderr
