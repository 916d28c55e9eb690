"""images.urls through the API: private addresses refused by default, fetched when allowed.

Every server here listens on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from tests.client import b64
from tests.faces import FACES_IN
from tests.localserver import LocalServer, body, redirect

PHOTO = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
FACES = FACES_IN["yaoming.jpg"]
PNG = encode(read_rgb(GROUP_PHOTOS["yaoming.jpg"]), ".png")


@pytest.fixture(scope="module")
def images() -> Iterator[LocalServer]:
    with LocalServer() as server:
        server.routes["/yaoming.jpg"] = body(PHOTO)
        server.routes["/text"] = body(b"not an image at all")
        yield server


def _post(api: str, urls: list[str], data: list[str] | None = None, **options: object) -> requests.Response:
    return requests.post(
        f"{api}/extract", json={"images": {"data": data or [], "urls": urls}, **options}, timeout=60
    )


def test_loopback_url_is_refused_by_default_naming_url_and_reason(api: str, images: LocalServer) -> None:
    url = images.url("/yaoming.jpg")
    requests_seen = len(images.hosts)
    response = _post(api, [url])
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "url_refused"
    assert f"images.urls[0] '{url}'" in error["message"]
    assert "refused address" in error["message"] and "a loopback address" in error["message"]
    assert len(images.hosts) == requests_seen  # refused before any request reached the server


@pytest.mark.parametrize("url", ["file:///etc/passwd", "/etc/passwd", "ftp://127.0.0.1/a.jpg"])
def test_non_http_urls_are_refused(api: str, url: str) -> None:
    response = _post(api, [url])
    assert response.status_code == 422
    assert response.json()["code"] == "url_refused"
    assert "is not allowed; use http or https" in response.json()["message"]


def test_in_api_v2_the_other_images_are_still_answered(api: str, images: LocalServer) -> None:
    response = _post(api, [images.url("/yaoming.jpg")], data=[b64(PHOTO)], api_ver="2")
    assert response.status_code == 200, response.text
    good, refused = response.json()["data"]
    assert good["status"] == "ok" and len(good["faces"]) == FACES
    assert refused["status"] == "error" and refused["error"]["code"] == "url_refused"
    assert images.url("/yaoming.jpg") in refused["error"]["message"]


def test_allowed_network_is_fetched_and_analysed(allowing_api: str, images: LocalServer) -> None:
    response = _post(allowing_api, [images.url("/yaoming.jpg")], data=[b64(PHOTO)])
    assert response.status_code == 200, response.text
    from_data, from_url = response.json()
    assert len(from_data) == FACES and len(from_url) == FACES
    assert from_url[0]["bbox"] == from_data[0]["bbox"]


def test_redirect_out_of_the_allowed_network_is_refused(allowing_api: str, images: LocalServer) -> None:
    images.routes["/hop"] = redirect(f"http://127.0.0.2:{images.port}/yaoming.jpg")
    response = _post(allowing_api, [images.url("/hop"), images.url("/yaoming.jpg")], api_ver="2")
    assert response.status_code == 200, response.text
    refused, fetched = response.json()["data"]
    assert refused["status"] == "error" and refused["error"]["code"] == "url_refused"
    assert "redirect to 'http://127.0.0.2:" in refused["error"]["message"]
    assert fetched["status"] == "ok" and len(fetched["faces"]) == FACES


def test_fetch_errors_name_the_url(allowing_api: str, images: LocalServer) -> None:
    missing = _post(allowing_api, [images.url("/missing.jpg")])
    assert missing.status_code == 422
    assert missing.json()["code"] == "url_fetch_failed" and "HTTP status 404" in missing.json()["message"]
    text = _post(allowing_api, [images.url("/text")])
    assert text.status_code == 422
    assert text.json()["code"] == "invalid_image"
    assert images.url("/text") in text.json()["message"]


def test_worker_side_errors_of_url_images_name_the_url_slot(allowing_api: str, images: LocalServer) -> None:
    images.routes["/truncated.png"] = body(PNG[: len(PNG) // 2])  # header fine, data cut: fails in the worker
    response = _post(allowing_api, [images.url("/truncated.png")], data=[b64(PHOTO)])
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("images.urls[0]: ")


def test_refusal_of_an_internal_name_does_not_tell_its_address(api: str, images: LocalServer) -> None:
    url = images.url("/yaoming.jpg", host="localhost")
    response = _post(api, [url])
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert url in message and "refused address: localhost" in message
    assert "127.0.0.1" not in message and "::1" not in message  # no DNS oracle
