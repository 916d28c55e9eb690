"""The service's errors as one exception: HTTP status, stable ``code`` and ``message``."""

from __future__ import annotations

from typing import Any

import httpx
import msgpack


class FaceRestError(Exception):
    """An error answer (4xx, 5xx): ``code`` is the service's stable code (docs/errors.md)."""

    def __init__(self, status: int, code: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body or {}  # extra fields: retry_after_s, the job id of a 504, available models

    @property
    def job_id(self) -> str | None:
        """A 504's job, which goes on: poll it with ``result(job_id)``."""
        value = self.body.get("id")
        return value if isinstance(value, str) else None

    @classmethod
    def from_response(cls, response: httpx.Response) -> FaceRestError:
        try:
            if response.headers.get("content-type", "").startswith("application/x-msgpack"):
                body = msgpack.unpackb(response.content, raw=False)
            else:
                body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return cls(response.status_code, "http_error", response.text[:200])
        return cls(response.status_code, str(body.get("code", "error")), str(body.get("message", "")), body)


class InvalidName(ValueError):
    """A collection or subject name, face id or job id the service would refuse, caught before
    anything is sent: in a URL path, ``..`` or ``/`` would address another resource."""

    def __init__(self, kind: str, value: object, rule: str) -> None:
        shown = value[:140] if isinstance(value, str) else value
        super().__init__(f"{kind} {shown!r} is not valid: {rule}")
        self.kind = kind
        self.value = value
        self.rule = rule
