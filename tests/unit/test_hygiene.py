"""The origin check for browser writes (api/hygiene.py) on a tiny app, without a server."""

from __future__ import annotations

import pytest
from flask import Flask

from api import hygiene
from api.errors import register_error_handlers

OWN = "http://api.example:8080"
ALLOWED = "https://app.example"


@pytest.fixture(scope="module")
def app() -> Flask:
    app = Flask("hygiene-test")
    hygiene.install(app, (ALLOWED + "/",))
    register_error_handlers(app)

    @app.route("/write", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
    def write() -> str:
        return "done"

    return app


def _status(app: Flask, method: str, headers: dict[str, str]) -> tuple[int, str]:
    response = app.test_client().open(
        "/write",
        method=method,
        headers={"Host": "api.example:8080", **headers},
        data=b"{}",
        content_type="application/json",
    )
    body = response.get_json(silent=True)
    return response.status_code, body["code"] if isinstance(body, dict) else response.get_data(as_text=True)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://api.example:3000", "Sec-Fetch-Site": "same-site"},  # another port
        {"Origin": "https://evil.example"},  # a browser without fetch metadata
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},  # a sandboxed frame, a data: URL
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        # The right host behind the browser's verdict that it is another origin (http vs https).
        {"Origin": "https://api.example:8080", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_a_browser_write_from_another_origin_is_403(app: Flask, method: str, headers: dict[str, str]) -> None:
    assert _status(app, method, headers) == (403, "cross_origin_refused")


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, the Python client, InsightFace-REST's clients
        {"Origin": OWN, "Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # the user's own action
        {"Origin": OWN},  # no fetch metadata: the Host header decides
        {"Origin": "https://API.example:8080"},  # TLS ended by a proxy: the app sees http
        # Behind a TLS proxy the Host header does not match; the browser's verdict does.
        {"Origin": "https://facerest.example", "Sec-Fetch-Site": "same-origin"},
        {"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"},
        {"Origin": ALLOWED},
    ],
)
def test_own_allowed_and_non_browser_writes_pass(app: Flask, headers: dict[str, str]) -> None:
    assert _status(app, "POST", headers) == (200, "done")


def test_reads_are_not_checked(app: Flask) -> None:
    assert _status(app, "GET", {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}) == (
        200,
        "done",
    )


def test_the_message_names_the_origin_escaped_and_cut_short(app: Flask) -> None:
    response = app.test_client().post(
        "/write", headers={"Origin": "https://" + "é" * 300, "Sec-Fetch-Site": "cross-site"}, json={}
    )
    message = response.get_json()["message"]
    assert "\\xe9" in message and "é" not in message and len(message) < 400
    assert "FACEREST_CORS_ORIGINS" in message
