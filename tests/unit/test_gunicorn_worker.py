"""The gunicorn worker's JSON answers to requests refused while parsing."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
from gunicorn.http.errors import (
    InvalidHTTPVersion,
    InvalidResponseHeader,
    LimitRequestHeaders,
    LimitRequestLine,
)

from api.gunicorn_worker import refusal

CFG = SimpleNamespace(limit_request_line=8190, limit_request_field_size=8190, limit_request_fields=100)


def _parse(answer: bytes | None) -> tuple[str, dict[str, str], dict[str, str]]:
    assert answer is not None
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body)
    return status, headers, orjson.loads(body)


def test_oversize_request_line_and_headers_are_json() -> None:
    status, headers, body = _parse(refusal(LimitRequestLine(10000, 8190), CFG))
    assert status == "HTTP/1.1 414 URI Too Long" and headers["Content-Type"] == "application/json"
    assert body["code"] == "uri_too_long" and "8190" in body["message"]
    status, _, body = _parse(refusal(LimitRequestHeaders("limit request headers fields size"), CFG))
    assert status.startswith("HTTP/1.1 431") and body["code"] == "request_header_fields_too_large"


def test_malformed_request_is_400_json_and_server_faults_are_left_to_gunicorn() -> None:
    status, _, body = _parse(refusal(InvalidHTTPVersion("HTTP/9.9"), CFG))
    assert status.startswith("HTTP/1.1 400") and body["code"] == "bad_request"
    assert refusal(InvalidResponseHeader("x"), CFG) is None
    assert refusal(RuntimeError("x"), CFG) is None
