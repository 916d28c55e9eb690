"""What both clients share, without I/O: request bodies, answer decoding, the retry rule.

A new endpoint is a ``Call`` built here (method, path, body, whether a retry is safe) and a
parser of its answer; the sync and asyncio clients only send calls and apply ``RetryPolicy``.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgpack

from facerest_client.errors import FaceRestError

MSGPACK = "application/x-msgpack"
# What the service answers an overload (503), a rate limit in front of it (429) or a synchronous
# wait that ran out (504: the job goes on; the retry with the same Idempotency-Key waits for it).
RETRY_STATUSES = frozenset({429, 503, 504})
IDEMPOTENCY_HEADER = "Idempotency-Key"
API_KEY_HEADER = "X-API-Key"
DEFAULT_TIMEOUT_S = 120.0  # per request, both clients
DELTA_SECONDS = re.compile(r"[0-9]+")

ImageInput = bytes | str | Path  # file bytes, or a path to read


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to wait: ``Retry-After`` when the service sends it (capped at
    ``max_delay_s``), else exponential backoff from ``backoff_s``."""

    attempts: int = 4  # in all, the first included
    backoff_s: float = 0.5
    max_delay_s: float = 30.0

    def delay(self, attempt: int, retry_after: str | None) -> float:
        seconds = parse_retry_after(retry_after)
        if seconds is None:
            seconds = self.backoff_s * 2**attempt
        return min(max(seconds, 0.0), self.max_delay_s)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110); None for anything else,
    which leaves the wait to the backoff."""
    text = (value or "").strip()
    if not text:
        return None
    # ASCII digits only: str.isdigit() also takes '²' or '٣', which float() refuses or misreads.
    if DELTA_SECONDS.fullmatch(text):
        return float(text)  # a number too long for a float is inf: capped by max_delay_s
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": a time in UTC with no zone named
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() - time.time()


@dataclass(frozen=True, slots=True)
class Call:
    """One request to send, and whether sending it again is safe."""

    method: str
    path: str
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    # A multipart upload instead of ``content``: one file (its bytes, or a path streamed from
    # disk, never read whole) and text fields.
    upload: bytes | Path | None = None
    form: Mapping[str, str] = field(default_factory=dict)
    retry_safe: bool = True


UPLOAD_FIELD = "file"


@contextmanager
def request_args(call: Call) -> Iterator[dict[str, Any]]:
    """httpx's ``request`` arguments for one attempt of ``call``. An upload's file is opened for
    each attempt, so that a retry sends it again from its start; httpx reads it in chunks."""
    common = {"headers": call.headers, "params": call.params}
    if call.upload is None:
        yield {"content": call.content, **common}
    elif isinstance(call.upload, bytes):
        yield {"files": {UPLOAD_FIELD: ("upload", call.upload)}, "data": dict(call.form), **common}
    else:
        with call.upload.open("rb") as stream:
            yield {"files": {UPLOAD_FIELD: (call.upload.name, stream)}, "data": dict(call.form), **common}


def image_bytes(image: ImageInput) -> bytes:
    if isinstance(image, bytes):
        return image
    return Path(image).read_bytes()


def body_call(
    path: str,
    fields: Mapping[str, Any],
    images: Sequence[ImageInput],
    urls: Sequence[str],
    use_msgpack: bool,
    idempotent: bool = True,
) -> Call:
    """A POST whose body carries images: MessagePack with raw bytes, or JSON with base64.

    ``idempotent``: the call gets a fresh Idempotency-Key, so that its retries (the same key, the
    same bytes) return the first attempt's job instead of queueing another."""
    data = [image_bytes(image) for image in images]
    headers = {IDEMPOTENCY_HEADER: uuid.uuid4().hex} if idempotent else {}
    if use_msgpack:
        body = {"images": {"data": data, "urls": list(urls)}, **fields}
        content = msgpack.packb(body, use_bin_type=True)
        headers |= {"Content-Type": "application/msgpack", "Accept": MSGPACK}
    else:
        encoded = [base64.b64encode(item).decode("ascii") for item in data]
        body = {"images": {"data": encoded, "urls": list(urls)}, **fields}
        content = _json_dumps(body)
        headers |= {"Content-Type": "application/json", "Accept": "application/json"}
    return Call("POST", path, content=content, headers=headers)


def _json_dumps(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def decode(response: httpx.Response) -> Any:
    """The answer's body as Python values, or the service's error raised as FaceRestError."""
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    if response.status_code >= 400:
        raise FaceRestError.from_response(response)
    if media_type == MSGPACK:
        return msgpack.unpackb(response.content, raw=False)
    if media_type == "application/json":
        return response.json()
    return response.content
