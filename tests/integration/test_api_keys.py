"""Optional API keys: 401 without, 403 with a wrong key; health and docs stay open; keys never shown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deploy.launcher import Stack, stack

KEYS = ("key-one-5c1b7f", "key-two-93aa01")
FILE_KEY = "key-from-file-77e2d4"
WRONG = "wrong-key-0d4f3e"
BAD_IMAGE = {"images": {"data": ["bm90IGFuIGltYWdl"]}}  # passes authentication, then 422


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = Path(tmp_path_factory.mktemp("keys"))
    keys_file = workdir / "keys.txt"
    keys_file.write_text(f"# one key a line\n\n{FILE_KEY}\n")
    with stack(workdir, api_keys=",".join(KEYS), api_keys_file=str(keys_file)) as running:
        running.start_api()
        yield running


def test_missing_key_is_401_json(secured: Stack) -> None:
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


def test_wrong_key_is_403_json(secured: Stack) -> None:
    response = requests.post(
        f"{secured.api_url}/extract", json=BAD_IMAGE, headers={"X-API-Key": WRONG}, timeout=10
    )
    assert response.status_code == 403
    assert response.json() == {"code": "invalid_api_key", "message": "the API key is not valid"}
    assert "X-Request-ID" in response.headers


@pytest.mark.parametrize("key", [*KEYS, FILE_KEY])
def test_every_configured_key_is_accepted(secured: Stack, key: str) -> None:
    response = requests.post(
        f"{secured.api_url}/extract", json=BAD_IMAGE, headers={"X-API-Key": key}, timeout=10
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_image"
    missing = requests.get(f"{secured.api_url}/results/nope", headers={"X-API-Key": key}, timeout=10)
    assert missing.status_code == 404


def test_bearer_token_is_accepted_for_scrapers(secured: Stack) -> None:
    headers = {"Authorization": f"Bearer {KEYS[0]}"}
    response = requests.get(f"{secured.api_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200 and "facerest_http_requests_total" in response.text


@pytest.mark.parametrize("path", ["/health", "/ready", "/openapi.json", "/docs"])
def test_probes_and_docs_stay_open(secured: Stack, path: str) -> None:
    response = requests.get(f"{secured.api_url}{path}", timeout=10)
    assert response.status_code in {200, 503}  # /ready is 503: this stack has no worker
    assert response.status_code == 200 or path == "/ready"


def test_keys_are_never_shown_or_logged(secured: Stack) -> None:
    info = requests.get(f"{secured.api_url}/info", headers={"X-API-Key": KEYS[1]}, timeout=10)
    assert info.status_code == 200 and info.json()["api_keys"] is True
    for key in (*KEYS, FILE_KEY, WRONG):
        assert key not in info.text
    requests.get(f"{secured.api_url}/info", headers={"X-API-Key": WRONG}, timeout=10)
    api = secured.service("api")
    log = api.output()
    assert '"msg":"GET /info 200' in log  # the access log is there...
    for key in (*KEYS, FILE_KEY, WRONG):
        assert key not in log  # ...without any key


def test_keys_are_off_by_default(api: str) -> None:
    assert requests.get(f"{api}/info", timeout=10).json()["api_keys"] is False
