"""Input hygiene against the real API under gunicorn: job ids, media types, the origin of
browser writes, CORS, 405, 414/431, Retry-After, Redis errors that are not outages, opaque
worker ids, unknown settings."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import orjson
import pytest
import requests

from deploy.launcher import Service, Stack, wait_until
from testkit.photos import GROUP_PHOTOS
from tests.client import b64

PHOTO = b64(GROUP_PHOTOS["yaoming.jpg"].read_bytes())
BODY = orjson.dumps({"images": {"data": [PHOTO]}})
ALLOWED_ORIGIN = "https://app.example"
FOREIGN_ORIGIN = "https://evil.example"


def _raw(api: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (requests would refuse some of them) and read the whole answer."""
    parts = urlsplit(api)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def _is_json_error(headers: dict[str, str], body: bytes, code: str) -> None:
    assert headers["content-type"].startswith("application/json"), (headers, body[:200])
    error = orjson.loads(body)
    assert error["code"] == code and error["message"], error


# --- job ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["x:done", "abc", "A" * 32, "0" * 31 + "g", "0" * 33, "..x"])
def test_a_malformed_job_id_is_404_before_redis(api: str, job_id: str) -> None:
    response = requests.get(f"{api}/results/{job_id}", timeout=10)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "job_not_found"


@pytest.mark.parametrize("suffix", [":done", ":input"])
def test_a_job_id_naming_another_redis_key_is_404(api: str, suffix: str) -> None:
    """Issue 12, finding 6: ``<id>:done`` named the job's done-marker key, and the wrong-type
    error it raised was answered as 503 "Redis unavailable"."""
    queued = requests.post(f"{api}/extract", json={"images": {"data": [PHOTO]}, "async": True}, timeout=60)
    job_id = queued.json()["id"]
    assert requests.get(f"{api}/results/{job_id}?wait=25", timeout=60).json()["status"] == "done"
    response = requests.get(f"{api}/results/{job_id}{suffix}", timeout=10)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "job_not_found"


def test_a_redis_wrong_type_error_is_500_not_unavailable(api: str, system: Stack) -> None:
    """A Redis error that is not an outage (WRONGTYPE on a crafted key) is a bug: 500 with the
    request id, never 503 'Redis unavailable' (which misleads monitoring and retries)."""
    job_id = uuid.uuid4().hex
    client = system.client()
    key = f"facerest:job:{job_id}"
    client.rpush(key, "not a hash")
    try:
        response = requests.get(f"{api}/results/{job_id}", timeout=10)
    finally:
        client.delete(key)
    assert response.status_code == 500, response.text
    error = response.json()
    assert error["code"] == "internal_error"
    assert response.headers["X-Request-ID"] in error["message"]
    assert "unavailable" not in error["message"] and "WRONGTYPE" not in error["message"]


# --- media types (CSRF) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "text/plain; charset=utf-8", None]
)
def test_a_post_body_that_is_not_json_msgpack_or_multipart_is_415(api: str, content_type: str | None) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    # requests adds no Content-Type for raw bytes: the "missing" case.
    response = requests.post(f"{api}/extract", data=BODY, headers=headers, timeout=30)
    assert response.status_code == 415, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["code"] == "unsupported_media_type"


def test_json_with_its_charset_is_still_served(api: str) -> None:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = requests.post(f"{api}/extract", data=BODY, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert len(response.json()[0]) == 1


# --- CORS ---------------------------------------------------------------------------------------


def _preflight(api: str, origin: str) -> requests.Response:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key",
    }
    return requests.options(f"{api}/extract", headers=headers, timeout=10)


def test_cors_is_closed_by_default(api: str) -> None:
    preflight = _preflight(api, FOREIGN_ORIGIN)
    assert not [h for h in preflight.headers if h.lower().startswith("access-control-")], preflight.headers
    answer = requests.get(f"{api}/health", headers={"Origin": FOREIGN_ORIGIN}, timeout=10)
    assert not [h for h in answer.headers if h.lower().startswith("access-control-")], answer.headers


@pytest.fixture(scope="module")
def cors_api(system: Stack) -> Iterator[str]:
    api: Service = system.start_api(extra_env={"FACEREST_CORS_ORIGINS": ALLOWED_ORIGIN})
    yield api.url
    api.stop()


def test_cors_origins_allow_only_those_origins(cors_api: str) -> None:
    allowed = _preflight(cors_api, ALLOWED_ORIGIN)
    assert allowed.status_code == 204
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "X-API-Key" in allowed.headers["Access-Control-Allow-Headers"]
    foreign = _preflight(cors_api, FOREIGN_ORIGIN)
    assert not [h for h in foreign.headers if h.lower().startswith("access-control-")], foreign.headers

    served = requests.get(f"{cors_api}/health", headers={"Origin": ALLOWED_ORIGIN}, timeout=10)
    assert served.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert "Origin" in served.headers["Vary"]
    refused = requests.get(f"{cors_api}/health", headers={"Origin": FOREIGN_ORIGIN}, timeout=10)
    assert "Access-Control-Allow-Origin" not in refused.headers
    # An error answer carries it too, or the page could not read why its request failed.
    missing = requests.get(f"{cors_api}/results/nope", headers={"Origin": ALLOWED_ORIGIN}, timeout=10)
    assert missing.status_code == 404
    assert missing.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN


# --- the origin of browser writes (CSRF) ---------------------------------------------------------


def _multipart_enroll(api: str, collection: str, headers: dict[str, str]) -> requests.Response:
    """The enroll a page's no-cors ``fetch`` with a FormData body sends (no preflight)."""
    photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    return requests.post(
        f"{api}/collections/{collection}/subjects/ceo/faces",
        files={"file": ("ceo.jpg", photo, "image/jpeg")},
        headers=headers,
        timeout=60,
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": FOREIGN_ORIGIN, "Sec-Fetch-Site": "cross-site"},
        {"Origin": FOREIGN_ORIGIN},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_browser_write_from_a_foreign_origin_is_403_and_changes_nothing(
    api: str, headers: dict[str, str]
) -> None:
    """Issue 24: a page on another origin enrolled (201) and compacted (202) with keys off."""
    enroll = _multipart_enroll(api, "csrf-victim", headers)
    assert enroll.status_code == 403, enroll.text
    assert enroll.json()["code"] == "cross_origin_refused"
    compact = requests.post(f"{api}/collections/csrf-victim/compact", json={}, headers=headers, timeout=10)
    assert compact.status_code == 403 and compact.json()["code"] == "cross_origin_refused"
    listed = requests.get(f"{api}/collections/csrf-victim/subjects", timeout=10)
    assert listed.status_code == 404 and listed.json()["code"] == "collection_not_found"


def test_a_browser_write_from_the_own_origin_or_an_allowed_one_passes(api: str, cors_api: str) -> None:
    own = urlsplit(api).netloc
    enrolled = _multipart_enroll(api, "csrf-own", {"Origin": f"http://{own}", "Host": own})
    assert enrolled.status_code == 201, enrolled.text
    same_origin = {"Origin": f"http://{own}", "Sec-Fetch-Site": "same-origin"}
    deleted = requests.delete(f"{api}/collections/csrf-own", headers=same_origin, timeout=10)
    assert deleted.status_code == 200, deleted.text
    allowed = {"Origin": ALLOWED_ORIGIN, "Sec-Fetch-Site": "cross-site"}
    enrolled = _multipart_enroll(cors_api, "csrf-allowed", allowed)
    assert enrolled.status_code == 201, enrolled.text
    assert enrolled.headers["Access-Control-Allow-Origin"] == ALLOWED_ORIGIN
    assert requests.delete(f"{cors_api}/collections/csrf-allowed", timeout=10).status_code == 200
    # The allowed list is an allow-list, not an opening: other origins are still refused there.
    foreign = _multipart_enroll(cors_api, "csrf-allowed", {"Origin": FOREIGN_ORIGIN})
    assert foreign.status_code == 403 and foreign.json()["code"] == "cross_origin_refused"


# --- 405, 414, 431, 413 -------------------------------------------------------------------------


def test_405_names_the_allowed_methods(api: str) -> None:
    response = requests.put(f"{api}/extract", json={}, timeout=10)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"POST", "OPTIONS"}


def test_a_10_kb_url_is_414_json(api: str) -> None:
    status, headers, body = _raw(
        api, b"GET /results/" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    assert status == 414
    _is_json_error(headers, body, "uri_too_long")


def test_a_20_kb_header_is_431_json(api: str) -> None:
    status, headers, body = _raw(
        api, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\nConnection: close\r\n\r\n"
    )
    assert status == 431
    _is_json_error(headers, body, "request_header_fields_too_large")


def test_too_many_headers_is_431_json(api: str) -> None:
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(200))
    status, headers, body = _raw(
        api, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"Connection: close\r\n\r\n"
    )
    assert status == 431
    _is_json_error(headers, body, "request_header_fields_too_large")


def test_a_malformed_request_line_is_400_json(api: str) -> None:
    status, headers, body = _raw(api, b"GET /health HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 400
    _is_json_error(headers, body, "bad_request")


def test_a_body_over_max_body_bytes_is_413_json(api: str) -> None:
    # Declared length over the limit: refused from the header, without reading the body.
    status, headers, body = _raw(
        api,
        b"POST /extract HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000000\r\nConnection: close\r\n\r\n{}",
    )
    assert status == 413
    _is_json_error(headers, body, "request_entity_too_large")


# --- Retry-After ----------------------------------------------------------------------------------


def test_a_504_carries_retry_after(system: Stack) -> None:
    # A queue no worker reads: the job waits out the synchronous timeout.
    api = system.start_api(extra_env={"FACEREST_SYNC_TIMEOUT_S": "1", "FACEREST_QUEUE": "facerest-nobody"})
    try:
        response = requests.post(
            f"{api.url}/extract", data=BODY, headers={"Content-Type": "application/json"}, timeout=60
        )
    finally:
        api.stop()
    assert response.status_code == 504, response.text
    assert response.json()["code"] == "timeout"
    assert int(response.headers["Retry-After"]) > 0


def test_redis_unreachable_503_carries_retry_after(system: Stack) -> None:
    api = system.start_api(extra_env={"FACEREST_REDIS_URL": "redis://127.0.0.1:1/0"}, wait=False)
    try:
        wait_until(lambda: _answers(api.url), 30, "the API without Redis")
        health = requests.get(f"{api.url}/health", timeout=10)
        job = requests.get(f"{api.url}/results/{uuid.uuid4().hex}", timeout=30)
    finally:
        api.stop()
    assert health.status_code == 503 and int(health.headers["Retry-After"]) > 0
    assert job.status_code == 503 and job.json()["code"] == "unavailable"
    assert int(job.headers["Retry-After"]) > 0


def _answers(url: str) -> bool:
    try:
        requests.get(f"{url}/health", timeout=2)
    except requests.ConnectionError:
        return False
    return True


# --- worker names, unknown settings -----------------------------------------------------------------


def test_worker_names_are_opaque_ids(api: str, system: Stack) -> None:
    (name,) = {w.name for w in system.workers().online()}
    answer = requests.post(
        f"{api}/extract", json={"images": {"data": [PHOTO]}, "api_ver": "2"}, timeout=60
    ).json()
    expected = "w-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    assert answer["worker"] == expected
    queued = requests.post(f"{api}/extract", json={"images": {"data": [PHOTO]}, "async": True}, timeout=60)
    state = requests.get(f"{api}{queued.json()['status_url']}?wait=25", timeout=60).json()
    assert state["worker"] == expected
    host = name.rsplit("@", 1)[1]
    assert host not in str(answer["worker"]) and host not in state["worker"]


def test_an_unknown_setting_is_reported_with_the_closest_name(system: Stack) -> None:
    api = system.start_api(extra_env={"FACEREST_DET_MAX_SIZE": "640", "FACEREST_SYNC_TIMEOT_S": "5"})
    try:
        assert requests.get(f"{api.url}/health", timeout=10).status_code == 200  # not fatal
    finally:
        api.stop()
    output = api.output()
    assert "unknown setting FACEREST_DET_MAX_SIZE (ignored); did you mean FACEREST_" in output
    assert "unknown setting FACEREST_SYNC_TIMEOT_S (ignored); did you mean FACEREST_SYNC_TIMEOUT_S?" in output
