"""Webhooks end to end: the session's worker, an API and a courier with webhook settings, and a
real local receiver (a threaded http.server). The signature is checked here from the description
in docs/webhooks.md, not with the service's code."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from deploy.launcher import Service, Stack, free_port, wait_until
from testkit.photos import GROUP_PHOTOS, encode
from testkit.video import make_video
from tests.client import b64
from tests.localserver import LocalServer, Posted

SECRET = "webhook-test-secret"
DEFAULT_KEY, PLAIN_KEY = "key-with-default-callback", "key-without"
PHOTO = b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())
BLANK = b64(encode(np.full((96, 96, 3), 128, dtype=np.uint8)))  # no face: an enroll of it fails
# Short backoff, so that a retry schedule runs in about a second.
SCHEDULE = {
    "FACEREST_WEBHOOK_SECRET": SECRET,
    "FACEREST_WEBHOOK_ALLOW": "127.0.0.1/32",
    "FACEREST_WEBHOOK_BACKOFF_S": "0.2",
    "FACEREST_WEBHOOK_BACKOFF_MAX_S": "0.4",
    "FACEREST_WEBHOOK_RETRY_FOR_S": "60",
}


@dataclass
class Hooks:
    url: str
    courier: Service
    system: Stack


@pytest.fixture(scope="module")
def receiver() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.fixture(scope="module")
def hooks(system: Stack, receiver: LocalServer) -> Iterator[Hooks]:
    env = SCHEDULE | {"FACEREST_API_KEYS": f"{DEFAULT_KEY} callback={receiver.url('/default')},{PLAIN_KEY}"}
    api = system.start_api(extra_env=env)
    courier = system.start_courier(extra_env=env)
    yield Hooks(api.url, courier, system)
    courier.stop()
    api.stop()


def verified(secret: str, posted: Posted) -> bool:
    """A receiver's check: HMAC-SHA256 of "TIMESTAMP.BODY", and a timestamp of the last 5 minutes."""
    timestamp = posted.headers["x-facerest-timestamp"]
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + posted.body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) <= 300
    return fresh and hmac.compare_digest("sha256=" + mac, posted.headers["x-facerest-signature"])


def submit(api: str, key: str, path: str = "/extract", **fields: Any) -> str:
    body = {"images": {"data": [PHOTO]}, "async": True} | fields
    reply = requests.post(f"{api}{path}", json=body, headers={"X-API-Key": key}, timeout=30)
    assert reply.status_code == 202, reply.text
    return str(reply.json()["id"])


def results(api: str, job_id: str, key: str = PLAIN_KEY) -> dict[str, Any]:
    reply = requests.get(f"{api}/results/{job_id}", headers={"X-API-Key": key}, timeout=30)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


def until(
    api: str, job_id: str, check: Callable[[dict[str, Any]], bool], what: str, key: str = PLAIN_KEY
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def probe() -> bool:
        seen.update(results(api, job_id, key))
        return check(seen)

    wait_until(probe, 60, what, interval_s=0.05)
    return seen


def posts_of(receiver: LocalServer, job_id: str) -> list[Posted]:
    return [posted for posted in receiver.posts if posted.headers.get("x-facerest-job") == job_id]


def test_a_finished_job_posts_its_results_envelope_signed(hooks: Hooks, receiver: LocalServer) -> None:
    job_id = submit(hooks.url, PLAIN_KEY, callback_url=receiver.url("/hook"))
    final = until(hooks.url, job_id, lambda body: body["callback"]["status"] == "delivered", "the delivery")
    assert final["callback"] == {"status": "delivered", "attempts": 1, "last_error": None}
    (posted,) = posts_of(receiver, job_id)
    assert posted.path == "/hook" and posted.headers["content-type"] == "application/json"
    plain_secret = requests.get(f"{hooks.url}/webhooks/secret", headers={"X-API-Key": PLAIN_KEY}, timeout=10)
    assert plain_secret.status_code == 200 and plain_secret.headers["Cache-Control"] == "no-store"
    assert verified(plain_secret.json()["secret"], posted)
    assert not verified(SECRET, posted), (
        "with keys on, a key's deliveries are not signed with the service secret"
    )
    sent = json.loads(posted.body)
    # The envelope GET /results answers, as it stood when sent (its first attempt under way).
    assert sent["callback"] == {"status": "pending", "attempts": 1, "last_error": None}
    assert {**sent, "callback": final["callback"]} == final
    assert sent["status"] == "done" and len(sent["result"][0]) == 1  # one face in the photo


def test_a_key_s_default_callback_gets_its_jobs_signed_with_that_key_s_secret(
    hooks: Hooks, receiver: LocalServer
) -> None:
    job_id = submit(hooks.url, DEFAULT_KEY)
    until(
        hooks.url, job_id, lambda body: body["callback"]["status"] == "delivered", "delivery", key=DEFAULT_KEY
    )
    (posted,) = posts_of(receiver, job_id)
    assert posted.path == "/default"
    secrets = {
        key: requests.get(f"{hooks.url}/webhooks/secret", headers={"X-API-Key": key}, timeout=10).json()[
            "secret"
        ]
        for key in (DEFAULT_KEY, PLAIN_KEY)
    }
    assert verified(secrets[DEFAULT_KEY], posted)
    assert not verified(secrets[PLAIN_KEY], posted), "another key's secret must not verify it"


def test_a_failed_job_is_delivered_too(hooks: Hooks, receiver: LocalServer) -> None:
    body = {"images": {"data": [BLANK]}, "async": True, "callback_url": receiver.url("/failed")}
    reply = requests.post(
        f"{hooks.url}/collections/hooks-test/subjects/nobody/faces",
        json=body,
        headers={"X-API-Key": PLAIN_KEY},
        timeout=30,
    )
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    until(hooks.url, job_id, lambda body: body["callback"]["status"] == "delivered", "the delivery")
    (posted,) = posts_of(receiver, job_id)
    sent = json.loads(posted.body)
    assert (sent["status"], sent["error"]["code"]) == ("failed", "no_face")


def test_a_receiver_that_is_down_is_retried_until_it_is_back(hooks: Hooks) -> None:
    port = free_port()
    job_id = submit(hooks.url, PLAIN_KEY, callback_url=f"http://127.0.0.1:{port}/late")
    retrying = until(hooks.url, job_id, lambda body: body["callback"]["attempts"] >= 3, "three attempts")
    assert retrying["status"] == "done"
    assert retrying["callback"]["status"] == "retrying"
    assert retrying["callback"]["last_error"].startswith("cannot connect to the receiver")
    with LocalServer(port=port) as back:
        final = until(hooks.url, job_id, lambda body: body["callback"]["status"] == "delivered", "delivery")
    assert final["callback"]["attempts"] > retrying["callback"]["attempts"]
    assert final["callback"]["last_error"] is None
    (posted,) = back.posts
    sent = json.loads(posted.body)
    assert (
        sent["callback"]["status"] == "retrying"
        and sent["callback"]["attempts"] == final["callback"]["attempts"]
    )


def test_a_callback_waits_in_redis_while_the_courier_is_down(hooks: Hooks, receiver: LocalServer) -> None:
    hooks.courier.stop()
    try:
        job_id = submit(hooks.url, PLAIN_KEY, callback_url=receiver.url("/while-down"))
        done = until(hooks.url, job_id, lambda body: body["status"] == "done", "the job")
        time.sleep(0.5)
        assert results(hooks.url, job_id)["callback"] == {
            "status": "pending",
            "attempts": 0,
            "last_error": None,
        }
        assert posts_of(receiver, job_id) == []
    finally:
        hooks.courier.restart()
        hooks.system.wait_ready([hooks.courier], 30)
    final = until(hooks.url, job_id, lambda body: body["callback"]["status"] == "delivered", "the delivery")
    assert final["callback"]["attempts"] == 1 and done["status"] == "done"
    assert len(posts_of(receiver, job_id)) == 1


def test_a_loopback_callback_is_refused_unless_allowed(hooks: Hooks, api: str) -> None:
    # 127.0.0.1/32 is allowed; the rest of the loopback network is not.
    refused = requests.post(
        f"{hooks.url}/extract",
        json={"images": {"data": [PHOTO]}, "async": True, "callback_url": "http://127.0.0.2:9/hook"},
        headers={"X-API-Key": PLAIN_KEY},
        timeout=30,
    )
    assert refused.status_code == 422
    assert refused.json() == {
        "code": "url_refused",
        "message": "callback_url: refused address: 127.0.0.2 is or resolves to a loopback address "
        "(not in FACEREST_WEBHOOK_ALLOW)",
    }
    # The session's API has no webhook secret: callbacks are off there, and there is no secret to tell.
    off = requests.post(
        f"{api}/extract",
        json={"images": {"data": [PHOTO]}, "callback_url": "https://example.com/"},
        timeout=30,
    )
    assert (off.status_code, off.json()["code"]) == (422, "validation_error")
    no_secret = requests.get(f"{api}/webhooks/secret", timeout=10)
    assert (no_secret.status_code, no_secret.json()["code"]) == (404, "no_webhook_secret")


def test_a_synchronous_job_with_a_callback_keeps_its_result_for_the_retries(
    hooks: Hooks, receiver: LocalServer
) -> None:
    body = {"images": {"data": [PHOTO]}, "callback_url": receiver.url("/sync")}
    reply = requests.post(f"{hooks.url}/extract", json=body, headers={"X-API-Key": PLAIN_KEY}, timeout=60)
    assert reply.status_code == 200, reply.text
    wait_until(lambda: any(posted.path == "/sync" for posted in receiver.posts), 30, "the delivery")
    (posted,) = [posted for posted in receiver.posts if posted.path == "/sync"]
    job_id = posted.headers["x-facerest-job"]
    assert json.loads(posted.body)["result"] == reply.json()
    # Not cut to FACEREST_SYNC_RESULT_TTL_S (60 s) once answered: a retry would find nothing to send.
    with hooks.system.client() as client:
        assert client.ttl(f"facerest:job:{job_id}") > 600


def test_a_whole_collection_job_takes_a_callback_in_its_optional_body(
    hooks: Hooks, receiver: LocalServer
) -> None:
    # Re-cluster (people discovery) reads the same optional body as reindex and compact.
    photos = f"{hooks.url}/collections/hooks-people/photos"
    headers = {"X-API-Key": PLAIN_KEY}
    ingested = requests.post(photos, json={"images": {"data": [PHOTO]}}, headers=headers, timeout=60)
    assert ingested.status_code == 200, ingested.text
    reply = requests.post(
        f"{hooks.url}/collections/hooks-people/clusters/recluster",
        json={"callback_url": receiver.url("/recluster")},
        headers=headers,
        timeout=30,
    )
    assert reply.status_code == 202, reply.text
    job_id = reply.json()["id"]
    until(hooks.url, job_id, lambda body: body["callback"]["status"] == "delivered", "the delivery")
    (posted,) = posts_of(receiver, job_id)
    assert posted.path == "/recluster" and json.loads(posted.body)["status"] == "done"


def test_a_finished_video_posts_its_envelope_and_is_its_key_s_alone(
    hooks: Hooks, receiver: LocalServer, tmp_path: Path
) -> None:
    make_video(tmp_path / "scene.mp4")
    with (tmp_path / "scene.mp4").open("rb") as file:
        reply = requests.post(
            f"{hooks.url}/videos",
            files={"file": file},
            data={"fps": "1", "callback_url": receiver.url("/video")},
            headers={"X-API-Key": PLAIN_KEY},
            timeout=60,
        )
    assert reply.status_code == 202, reply.text
    video_id = reply.json()["id"]
    final = until(hooks.url, video_id, lambda body: body["callback"]["status"] == "delivered", "the delivery")
    (posted,) = posts_of(receiver, video_id)
    sent = json.loads(posted.body)
    assert sent["status"] == "done" and sent["result"] == final["result"]
    assert sent["result"]["video_id"] == video_id and sent["result"]["tracks"]
    # Another key's video is answered like an unknown one, and cannot be deleted by it.
    other = {"X-API-Key": DEFAULT_KEY}
    assert requests.get(f"{hooks.url}/videos/{video_id}", headers=other, timeout=10).status_code == 404
    assert requests.delete(f"{hooks.url}/videos/{video_id}", headers=other, timeout=10).status_code == 404
    mine = requests.get(f"{hooks.url}/videos/{video_id}", headers={"X-API-Key": PLAIN_KEY}, timeout=10)
    assert mine.status_code == 200 and mine.json()["status"] == "done"
