"""Optional API keys: 401 without, 403 with a wrong key; health and docs stay open; keys never shown;
a job is answered only to the key that created it; a delivered synchronous result expires soon."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from deploy.launcher import Service, Stack, wait_until
from shared.jobs import JobStore
from testkit.photos import GROUP_PHOTOS
from tests.client import b64

KEYS = ("key-one-5c1b7f", "key-two-93aa01")
FILE_KEY = "key-from-file-77e2d4"
WRONG = "wrong-key-0d4f3e"
BAD_IMAGE = {"images": {"data": ["bm90IGFuIGltYWdl"]}}  # passes authentication, then 422
SYNC_RESULT_TTL_S = 2
PREFIX = "facerest"


@dataclass(frozen=True, slots=True)
class Secured:
    """An API with keys on, on the session's Redis and worker."""

    system: Stack
    api: Service

    @property
    def api_url(self) -> str:
        return self.api.url


@pytest.fixture(scope="module")
def secured(system: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    keys_file = Path(tmp_path_factory.mktemp("keys")) / "keys.txt"
    keys_file.write_text(f"# one key a line\n\n{FILE_KEY}\n")
    settings = {
        "FACEREST_API_KEYS": ",".join(KEYS),
        "FACEREST_API_KEYS_FILE": str(keys_file),
        "FACEREST_SYNC_RESULT_TTL_S": str(SYNC_RESULT_TTL_S),
    }
    api = system.start_api(extra_env=settings)
    yield Secured(system, api)
    api.stop()


def _photo_body(**options: object) -> dict[str, object]:
    return {"images": {"data": [b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())]}, **options}


def _result(running: Secured, job_id: str, key: str | None, **params: str) -> requests.Response:
    headers = {} if key is None else {"X-API-Key": key}
    return requests.get(f"{running.api_url}/results/{job_id}", headers=headers, params=params, timeout=30)


def test_missing_key_is_401_json(secured: Secured) -> None:
    for method, path in (
        ("POST", "/extract"),
        ("GET", "/info"),
        ("GET", "/results/abc"),
        ("GET", "/metrics"),
    ):
        response = requests.request(method, f"{secured.api_url}{path}", json=BAD_IMAGE, timeout=10)
        assert response.status_code == 401, (path, response.text)
        assert response.json()["code"] == "missing_api_key"
        assert "X-API-Key" in response.headers["WWW-Authenticate"]


def test_wrong_key_is_403_json(secured: Secured) -> None:
    response = requests.post(
        f"{secured.api_url}/extract", json=BAD_IMAGE, headers={"X-API-Key": WRONG}, timeout=10
    )
    assert response.status_code == 403
    assert response.json() == {"code": "invalid_api_key", "message": "the API key is not valid"}
    assert "X-Request-ID" in response.headers


@pytest.mark.parametrize("key", [*KEYS, FILE_KEY])
def test_every_configured_key_is_accepted(secured: Secured, key: str) -> None:
    response = requests.post(
        f"{secured.api_url}/extract", json=BAD_IMAGE, headers={"X-API-Key": key}, timeout=10
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_image"
    missing = requests.get(f"{secured.api_url}/results/nope", headers={"X-API-Key": key}, timeout=10)
    assert missing.status_code == 404


def test_bearer_token_is_accepted_for_scrapers(secured: Secured) -> None:
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    response = requests.get(f"{secured.api_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200 and "facerest_http_requests_total" in response.text


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/docs"])
def test_probes_and_docs_stay_open(secured: Secured, path: str) -> None:
    response = requests.get(f"{secured.api_url}{path}", timeout=10)
    assert response.status_code == 200


def test_keys_are_never_shown_or_logged(secured: Secured) -> None:
    info = requests.get(f"{secured.api_url}/info", headers={"X-API-Key": KEYS[1]}, timeout=10)
    assert info.status_code == 200 and info.json()["api_keys"] is True
    for key in (*KEYS, FILE_KEY, WRONG):
        assert key not in info.text
    requests.get(f"{secured.api_url}/info", headers={"X-API-Key": WRONG}, timeout=10)
    log = secured.api.output()
    assert '"msg":"GET /info 200' in log  # the access log is there...
    for key in (*KEYS, FILE_KEY, WRONG):
        assert key not in log  # ...without any key


def test_keys_are_off_by_default(api: str) -> None:
    assert requests.get(f"{api}/info", timeout=10).json()["api_keys"] is False


def test_a_job_is_answered_only_to_the_key_that_created_it(secured: Secured) -> None:
    accepted = requests.post(
        f"{secured.api_url}/extract",
        json=_photo_body(**{"async": True}),
        headers={"X-API-Key": KEYS[0]},
        timeout=30,
    )
    assert accepted.status_code == 202
    job_id = accepted.json()["id"]
    mine = _result(secured, job_id, KEYS[0])
    assert mine.status_code == 200 and mine.json()["id"] == job_id
    unknown_id = uuid.uuid4().hex
    unknown = _result(secured, unknown_id, KEYS[1]).json()
    for key in (KEYS[1], FILE_KEY):
        for params in ({}, {"wait": "1"}):  # long-polling is no way around it
            other = _result(secured, job_id, key, **params)
            assert other.status_code == 404, (key, params, other.text)
            # The very answer an unknown id gets: a job id cannot be probed with another key.
            assert other.json() == {
                "code": unknown["code"],
                "message": unknown["message"].replace(unknown_id, job_id),
            }
    assert unknown["code"] == "job_not_found"


def test_a_delivered_synchronous_result_expires_after_sync_result_ttl_s(secured: Secured) -> None:
    running = secured
    headers = {"X-API-Key": KEYS[0], "Idempotency-Key": f"sync-{uuid.uuid4().hex}"}
    first = requests.post(f"{running.api_url}/extract", json=_photo_body(), headers=headers, timeout=60)
    assert first.status_code == 200 and len(first.json()[0]) >= 1
    store = JobStore(running.system.client(), PREFIX, 3600)
    scope = hashlib.sha256(KEYS[0].encode()).hexdigest()
    idempotency_key = store.idempotency_key(scope, headers["Idempotency-Key"])
    record = store.idempotency(idempotency_key)
    assert record is not None
    client = running.system.client()
    assert 0 < int(client.ttl(f"{PREFIX}:job:{record.job_id}")) <= SYNC_RESULT_TTL_S
    # Within the window an idempotent retry still gets the same result, from the same job.
    retry = requests.post(f"{running.api_url}/extract", json=_photo_body(), headers=headers, timeout=60)
    assert retry.status_code == 200 and retry.json() == first.json()
    assert _result(running, record.job_id, KEYS[0]).json()["status"] == "done"
    expired_by = time.monotonic() + SYNC_RESULT_TTL_S + 1
    wait_until(lambda: _result(running, record.job_id, KEYS[0]).status_code == 404, 10, "expiry")
    assert time.monotonic() < expired_by
    gone = _result(running, record.job_id, KEYS[0])
    assert gone.status_code == 404 and gone.json()["code"] == "job_not_found"
    assert not client.exists(f"{PREFIX}:job:{record.job_id}", idempotency_key)


def test_an_async_result_keeps_result_ttl_s_and_its_owner_reads_it(secured: Secured) -> None:
    running = secured
    accepted = requests.post(
        f"{running.api_url}/extract",
        json=_photo_body(**{"async": True}),
        headers={"X-API-Key": KEYS[1]},
        timeout=30,
    )
    job_id = accepted.json()["id"]
    done = _result(running, job_id, KEYS[1], wait="30")
    assert done.status_code == 200 and done.json()["status"] == "done"
    assert len(done.json()["result"][0]) >= 1
    assert _result(running, job_id, KEYS[0]).status_code == 404
    # Read, it keeps result_ttl_s (an hour), not sync_result_ttl_s.
    assert _result(running, job_id, KEYS[1]).json()["status"] == "done"
    assert int(running.system.client().ttl(f"{PREFIX}:job:{job_id}")) > 3000


def test_with_keys_off_a_result_is_readable_by_its_id_alone(api: str) -> None:
    body = {"images": {"data": [b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())]}, "async": True}
    job_id = requests.post(f"{api}/extract", json=body, timeout=30).json()["id"]
    response = requests.get(f"{api}/results/{job_id}", params={"wait": "30"}, timeout=60)
    assert response.status_code == 200 and response.json()["status"] == "done"
    # Any key sent along changes nothing while keys are off.
    assert requests.get(f"{api}/results/{job_id}", headers={"X-API-Key": WRONG}, timeout=10).ok
