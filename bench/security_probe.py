"""Security probe: the crafted requests of issue 12's findings 6 to 8 (and a few hostile images),
sent to a running API; prints one table row per case: status, content type, JSON code, time.

    python -m bench.security_probe                      # starts Redis, a worker and the API
    python -m bench.security_probe --url http://127.0.0.1:18081

Every request is written to the socket as bytes (requests would refuse some of them) and each
connection is closed after its answer, so the status and headers are exactly the server's.
"""

from __future__ import annotations

import argparse
import base64
import io
import socket
import struct
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from PIL import Image

from deploy.launcher import running_system
from testkit.photos import GROUP_PHOTOS

FOREIGN_ORIGIN = "https://evil.example"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    ms: float

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "-").split(";")[0]

    def json(self) -> dict[str, object]:
        try:
            value = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {"list": value}


def send(
    url: str, method: str, path: bytes, headers: dict[str, str] | None = None, body: bytes = b""
) -> Answer:
    parts = urlsplit(url)
    lines = [f"Host: {parts.netloc}", "Connection: close", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    if body and not any(k.lower() == "content-length" for k in headers or {}):
        lines.append(f"Content-Length: {len(body)}")
    request = method.encode() + b" " + path + b" HTTP/1.1\r\n" + "\r\n".join(lines).encode("latin-1")
    started = time.perf_counter()
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=120) as sock:
        sock.sendall(request + b"\r\n\r\n" + body)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    ms = (time.perf_counter() - started) * 1000
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    return Answer(int(status_line.split()[1]) if status_line else 0, parsed, content, ms)


def _json(body: object) -> bytes:
    return orjson.dumps(body)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb_header(side: int = 30000) -> bytes:
    """A tiny PNG whose header declares side x side RGB pixels (the data is one short row)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (side * 3 + 1))
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def truncated_png() -> bytes:
    with Image.open(GROUP_PHOTOS["yaoming.jpg"]) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    data = buffer.getvalue()
    return data[: len(data) // 2]


def _extract(url: str, body: object, content_type: str = "application/json") -> Answer:
    return send(url, "POST", b"/extract", {"Content-Type": content_type}, _json(body))


def _images(*data: bytes) -> dict[str, object]:
    return {"images": {"data": [base64.b64encode(d).decode() for d in data]}, "api_ver": "2"}


def _done_job(url: str, body: Mapping[str, object]) -> str:
    """The id of a job that ran to the end (its ``:done`` marker key exists in Redis)."""
    job_id = str(_extract(url, {**body, "async": True}).json()["id"])
    send(url, "GET", f"/results/{job_id}?wait=25".encode())
    return job_id


def _note_worker(answer: Answer) -> str:
    return f"worker={answer.json().get('worker')!r}"


def _note_message(answer: Answer) -> str:
    body = answer.json()
    message = str(body.get("message", ""))
    images = body.get("data")
    if not message and isinstance(images, list):
        message = "; ".join(str(i.get("error", {}).get("message", "")) for i in images if isinstance(i, dict))
    return message[:130]


def _note_cors(answer: Answer) -> str:
    found = {k: v for k, v in answer.headers.items() if k.startswith("access-control-")}
    return "no Access-Control-*" if not found else ", ".join(f"{k}: {v}" for k, v in found.items())[:90]


def cases(url: str) -> list[tuple[str, Callable[[], Answer], Callable[[Answer], str]]]:
    good = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    body = {"images": {"data": [base64.b64encode(good).decode()]}}
    none = lambda answer: ""  # noqa: E731
    return [
        (
            "6: GET /results/<id>:done",
            lambda: send(url, "GET", f"/results/{_done_job(url, body)}:done".encode()),
            _note_message,
        ),
        ("6: GET /results/<bad id>", lambda: send(url, "GET", b"/results/x"), _note_message),
        ("7: POST text/plain JSON body", lambda: _extract(url, body, "text/plain"), none),
        (
            "7: POST form-urlencoded",
            lambda: _extract(url, body, "application/x-www-form-urlencoded"),
            none,
        ),
        ("7: POST no Content-Type", lambda: send(url, "POST", b"/extract", {}, _json(body)), none),
        ("7: POST application/json", lambda: _extract(url, body), none),
        (
            "7: OPTIONS from foreign Origin",
            lambda: send(
                url,
                "OPTIONS",
                b"/extract",
                {"Origin": FOREIGN_ORIGIN, "Access-Control-Request-Method": "POST"},
            ),
            _note_cors,
        ),
        (
            "7: GET /health from foreign Origin",
            lambda: send(url, "GET", b"/health", {"Origin": FOREIGN_ORIGIN}),
            _note_cors,
        ),
        (
            "PUT /extract",
            lambda: send(url, "PUT", b"/extract", {"Content-Type": "application/json"}, b"{}"),
            lambda a: f"Allow: {a.headers.get('allow', '-')}",
        ),
        ("8: 10 KB URL", lambda: send(url, "GET", b"/results/" + b"a" * 10_000), none),
        ("8: 20 KB header", lambda: send(url, "GET", b"/health", {"X-Big": "b" * 20_000}), none),
        ("8: 200 headers", lambda: send(url, "GET", b"/health", {f"X-H{i}": "1" for i in range(200)}), none),
        (
            "8: body over max_body_bytes",
            lambda: send(
                url,
                "POST",
                b"/extract",
                {"Content-Type": "application/json", "Content-Length": str(100 * 1024 * 1024)},
                b"{}",
            ),
            none,
        ),
        (
            "8: loopback URL (localhost)",
            lambda: _extract(url, {"images": {"urls": ["http://localhost:9/a.jpg"]}}),
            _note_message,
        ),
        ("8: v2 answer's worker field", lambda: _extract(url, _images(good)), _note_worker),
        ("image: truncated PNG (v2)", lambda: _extract(url, _images(truncated_png())), _note_message),
        (
            "image: PNG bomb header 30000^2 (v2)",
            lambda: _extract(url, _images(png_bomb_header())),
            _note_message,
        ),
    ]


def probe(url: str) -> list[tuple[str, Answer, str]]:
    rows = []
    for name, run, note in cases(url):
        answer = run()
        rows.append((name, answer, note(answer)))
    return rows


def table(rows: list[tuple[str, Answer, str]]) -> str:
    lines = [
        "| case | status | content-type | JSON code | ms | note |",
        "|---|---|---|---|---|---|",
    ]
    for name, answer, text in rows:
        code = answer.json().get("code", "-")
        note = text.replace("|", "/")
        lines.append(
            f"| {name} | {answer.status} | {answer.content_type} | {code} | {answer.ms:.0f} | {note} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an API to probe (default: start one)")
    args = parser.parse_args()
    if args.url:
        print(table(probe(args.url.rstrip("/"))))
        return
    with running_system() as running:
        print(table(probe(running.api_url)))


if __name__ == "__main__":
    main()
