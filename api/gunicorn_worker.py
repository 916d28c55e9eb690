"""gunicorn's gthread worker, answering malformed and oversize requests in JSON.

gunicorn refuses a request line over ``limit_request_line`` (414), headers over
``limit_request_field_size`` or ``limit_request_fields`` (431) and unparsable requests (400)
before the app runs, with an HTML page. This worker writes the API's ``{code, message}`` form
instead, so every answer a client gets is JSON. Anything else (a 500 of gunicorn's own) goes
to gunicorn's handler. The limits stay gunicorn's (api/gunicorn_conf.py sets them).
"""

from __future__ import annotations

import socket
from typing import Any

import orjson
from gunicorn import util
from gunicorn.http.errors import (
    ConfigurationProblem,
    InvalidResponseHeader,
    InvalidResponseHeaderName,
    LimitRequestHeaders,
    LimitRequestLine,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.workers.gthread import ThreadWorker

MAX_DETAIL_CHARS = 200

REASONS = {
    400: "Bad Request",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}


def json_error(status: int, code: str, message: str) -> bytes:
    """A complete HTTP/1.1 response with the API's error body; the connection closes after it."""
    body = orjson.dumps({"code": code, "message": message})
    head = (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def refusal(exc: Exception, cfg: Any) -> bytes | None:
    """The JSON answer to a request gunicorn refused while parsing it (None: not a client error)."""
    if isinstance(exc, LimitRequestLine):
        return json_error(
            414,
            "uri_too_long",
            f"the request line (method and URL) is longer than {cfg.limit_request_line} bytes",
        )
    if isinstance(exc, LimitRequestHeaders):
        return json_error(
            431,
            "request_header_fields_too_large",
            f"the request headers are too large: at most {cfg.limit_request_fields} fields of "
            f"{cfg.limit_request_field_size} bytes each",
        )
    if isinstance(exc, UnsupportedTransferCoding):
        return json_error(501, "not_implemented", str(exc)[:MAX_DETAIL_CHARS])
    if isinstance(exc, ParseException) and not isinstance(
        exc, (ConfigurationProblem, InvalidResponseHeader, InvalidResponseHeaderName)
    ):
        detail = str(exc)[:MAX_DETAIL_CHARS]
        return json_error(400, "bad_request", f"malformed request: {type(exc).__name__}: {detail}")
    return None


class JsonErrorWorker(ThreadWorker):  # type: ignore[misc]
    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: Exception) -> None:
        answer = refusal(exc, self.cfg)
        if answer is None:
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, answer)
        except Exception:
            self.log.debug("Failed to send error message.")
