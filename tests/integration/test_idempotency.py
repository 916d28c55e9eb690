"""Idempotency-Key: a retry returns the job the first request made; and Redis stays bounded."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import requests

from deploy.launcher import Stack, stack, wait_until
from shared.queue import queue_depth, queue_lanes
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS
from tests.client import b64
from tests.faces import FACES_IN

KEY_A, KEY_B = "key-a", "key-b"
PHOTO = b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())
SLOW = b64(GROUP_PHOTOS["t1.jpg"].read_bytes())
RESULT_TTL_S = 900
# Keys without a TTL, bounded by the number of workers, of jobs in flight or queued, or of fixed
# size; and kombu's exchange bindings (one entry per queue).
LANES = queue_lanes(load_settings())
FIXED_SIZE = {
    "facerest:workers",
    "facerest:running",
    "facerest:pending",
    "facerest:primary",
    *LANES,
    "unacked",
    "unacked_index",
}
KOMBU_BINDINGS = "_kombu.binding"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = Path(tmp_path_factory.mktemp("idempotency"))
    with stack(
        workdir, api_keys=f"{KEY_A},{KEY_B}", result_ttl_s=str(RESULT_TTL_S), concurrency="2"
    ) as running:
        running.start_worker()
        running.start_api()
        yield running


def post(
    url: str, body: dict[str, Any], key: str | None, api_key: str = KEY_A, timeout: float = 60
) -> requests.Response:
    headers = {"X-API-Key": api_key} | ({"Idempotency-Key": key} if key else {})
    return requests.post(f"{url}/extract", json=body, headers=headers, timeout=timeout)


def job_ids(client: redis.Redis) -> set[str]:
    keys = cast(list[bytes], client.keys("facerest:job:*"))
    return {k.decode().split(":")[2] for k in keys}


def test_a_synchronous_retry_returns_the_same_result_from_the_same_job(system: Stack) -> None:
    client = system.client()
    before = job_ids(client)
    body = {"images": {"data": [PHOTO]}, "api_ver": "2"}
    first = post(system.api_url, body, "sync-1")
    again = post(system.api_url, body, "sync-1")
    assert first.status_code == again.status_code == 200
    (new_job,) = job_ids(client) - before
    assert first.json()["data"] == again.json()["data"]
    assert len(first.json()["data"][0]["faces"]) == FACES_IN["yaoming.jpg"]
    assert job_ids(client) - before == {new_job}, "the retry queued no job"
    # Without a key, the same body is a new request.
    assert post(system.api_url, body, None).status_code == 200
    assert len(job_ids(client) - before) == 2


def test_an_async_retry_returns_the_job_and_its_state_and_a_new_body_conflicts(system: Stack) -> None:
    url = system.api_url
    body = {"images": {"data": [SLOW] * 6}, "async": True}
    first = post(url, body, "async-1")
    assert first.status_code == 202 and first.json()["status"] == "queued"
    job_id = first.json()["id"]
    again = post(url, body, "async-1")
    assert again.status_code == 202 and again.json()["id"] == job_id
    assert again.json()["status"] in {"queued", "running"}
    wait_until(
        lambda: (
            requests.get(f"{url}/results/{job_id}", headers={"X-API-Key": KEY_A}, timeout=5).json()["status"]
            == "done"
        ),
        60,
        "job",
    )
    done = post(url, body, "async-1")
    assert done.status_code == 202 and done.json() == {
        "id": job_id,
        "status": "done",
        "status_url": f"/results/{job_id}",
    }

    conflict = post(url, {**body, "images": {"data": [PHOTO]}}, "async-1")
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict" and job_id in conflict.json()["message"]
    # Another API key has its own keys: the same key names another request there.
    other = post(url, body, "async-1", api_key=KEY_B)
    assert other.status_code == 202 and other.json()["id"] != job_id
    assert post(url, body, "bad key with spaces").status_code == 422


def test_a_key_sent_to_another_route_conflicts_and_makes_no_job(system: Stack) -> None:
    url, client = system.api_url, system.client()
    headers = {"X-API-Key": KEY_A, "Idempotency-Key": "route-1"}
    body = {"images": {"data": [PHOTO]}, "async": True}
    first = requests.post(
        f"{url}/collections/alicecoll/subjects/ann/faces", json=body, headers=headers, timeout=10
    )
    assert first.status_code == 202, first.text
    before = job_ids(client)
    for path in ("/collections/alice2/subjects/zed/faces", "/collections/alice2/recognize", "/extract"):
        other = requests.post(f"{url}{path}", json=body, headers=headers, timeout=10)
        assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict"), path
        assert "/collections/alicecoll/subjects/ann/faces" in other.json()["message"]
    compact = requests.post(f"{url}/collections/alice2/compact", json={}, headers=headers, timeout=10)
    assert (compact.status_code, compact.json()["code"]) == (409, "idempotency_conflict")
    assert "/collections/alicecoll/subjects/ann/faces" in compact.json()["message"]
    assert job_ids(client) == before, "no other route queued a job"
    again = requests.post(
        f"{url}/collections/alicecoll/subjects/ann/faces", json=body, headers=headers, timeout=10
    )
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]


def test_concurrent_requests_with_one_key_make_one_job(system: Stack) -> None:
    body = {"images": {"data": [PHOTO]}, "async": True}
    barrier = threading.Barrier(6)

    def send(_: int) -> requests.Response:
        barrier.wait()
        return post(system.api_url, body, "burst-1")

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(send, range(6)))
    assert {a.status_code for a in answers} == {202}
    assert len({a.json()["id"] for a in answers}) == 1


def test_a_retry_after_the_api_replica_died_mid_request_gets_the_result(system: Stack) -> None:
    body = {"images": {"data": [SLOW] * 8}, "api_ver": "2"}
    replica = system.start_api()
    client = system.client()
    before = job_ids(client)
    cut: list[BaseException] = []

    def first() -> None:
        try:
            post(replica.url, body, "cut-1")
        except requests.RequestException as exc:
            cut.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    wait_until(lambda: bool(job_ids(client) - before), 30, "the job")
    os.killpg(replica.pid, signal.SIGKILL)  # gunicorn and its workers, as a crash takes them
    thread.join(30)
    assert len(cut) == 1, "the first request should have lost its connection"
    retry = post(system.api_url, body, "cut-1")
    assert retry.status_code == 200 and len(retry.json()["data"]) == 8
    assert len(job_ids(client) - before) == 1


def test_every_key_expires_or_is_bounded(system: Stack) -> None:
    client = system.client()
    url = system.api_url
    wait_until(lambda: client.hlen("facerest:running") == 0 and queue_depth(client, LANES) == 0, 60, "idle")
    before = set(cast(list[bytes], client.keys("facerest:*")))
    for i in range(10):
        assert post(url, {"images": {"data": [PHOTO]}}, f"bounded-{i}").status_code == 200
    for _ in range(10):
        assert post(url, {"images": {"data": [PHOTO]}}, None).status_code == 200
    added = {k.decode() for k in set(cast(list[bytes], client.keys("facerest:*"))) - before}
    new = sorted(name.rsplit(":", 1)[0] for name in added - FIXED_SIZE)
    # Per finished job: its hash and its :done token (the input is deleted); and the key record.
    assert len(new) == 10 * 3 + 10 * 2
    assert sum(name == "facerest:idem" for name in new) == 10
    assert sum(name == "facerest:job" for name in new) == 20
    for key in cast(list[bytes], client.keys("*")):
        name = key.decode()
        ttl = client.ttl(name)
        assert 0 < ttl <= RESULT_TTL_S or name in FIXED_SIZE or name.startswith(KOMBU_BINDINGS), (name, ttl)
