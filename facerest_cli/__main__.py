"""``facerest enroll DIR --collection C`` / ``facerest recognize PHOTO --collection C`` /
``facerest verify A B``, against a running facerest (``--url``, default http://127.0.0.1:18081).

enroll: one subfolder per subject, its images inside. Images go in parallel (``--concurrency``),
one request each, with a progress line on stderr. Resumable: what was enrolled is recorded in
``DIR/.facerest-enroll-<collection>.json`` (path, size, mtime) and skipped next time; and the
server enrolls an image once per subject anyway (by its hash). Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
DEFAULT_URL = "http://127.0.0.1:18081"
TIMEOUT_S = 120


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body.get('code', '')}: {body.get('message', body)}")
        self.status = status
        self.body = body


@dataclass(frozen=True, slots=True)
class Client:
    url: str
    api_key: str | None = None

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["X-API-Key"] = self.api_key
        request = urllib.request.Request(
            self.url.rstrip("/") + path, json.dumps(body).encode(), headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
                answer: dict[str, Any] = json.loads(reply.read())
                return answer
        except urllib.error.HTTPError as exc:
            try:
                detail = json.loads(exc.read())
            except ValueError:
                detail = {"message": exc.reason}
            raise ApiError(exc.code, detail) from None


def images_body(*paths: Path) -> dict[str, Any]:
    return {"images": {"data": [base64.b64encode(p.read_bytes()).decode("ascii") for p in paths]}}


def _photos(root: Path) -> Iterator[tuple[str, Path]]:
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                yield folder.name, path


def _stamp(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


class Progress:
    """One line on stderr, rewritten: done/total, failures, images per second."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.started = time.perf_counter()
        self.lock = threading.Lock()

    def step(self, ok: bool) -> None:
        with self.lock:
            self.done += 1
            self.failed += not ok
            rate = self.done / max(time.perf_counter() - self.started, 1e-9)
            width = 30
            filled = width * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (width - filled)
            print(
                f"\r[{bar}] {self.done}/{self.total}  {self.failed} failed  {rate:.1f} img/s",
                end="",
                file=sys.stderr,
                flush=True,
            )


def enroll(client: Client, root: Path, collection: str, concurrency: int) -> int:
    state_file = root / f".facerest-enroll-{collection}.json"
    done: dict[str, str] = json.loads(state_file.read_text()) if state_file.exists() else {}
    todo = [(s, p) for s, p in _photos(root) if done.get(str(p.relative_to(root))) != _stamp(p)]
    skipped = sum(1 for _ in _photos(root)) - len(todo)
    progress = Progress(len(todo))
    lock = threading.Lock()
    failures: list[str] = []

    def one(subject: str, path: Path) -> None:
        try:
            client.post(f"/collections/{collection}/subjects/{subject}/faces", images_body(path))
        except (ApiError, OSError) as exc:
            with lock:
                failures.append(f"{path}: {exc}")
            progress.step(False)
            return
        with lock:
            done[str(path.relative_to(root))] = _stamp(path)
        progress.step(True)

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            for future in as_completed([pool.submit(one, s, p) for s, p in todo]):
                future.result()
    finally:
        state_file.write_text(json.dumps(done, indent=0, sort_keys=True))
    print(file=sys.stderr)
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    print(f"enrolled {len(todo) - len(failures)}, skipped {skipped} (done before), failed {len(failures)}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="facerest", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the API (default {DEFAULT_URL})")
    parser.add_argument("--api-key", help="sent as X-API-Key")
    commands = parser.add_subparsers(dest="command", required=True)
    p_enroll = commands.add_parser("enroll", help="enroll DIR/<subject>/<images>")
    p_enroll.add_argument("dir", type=Path)
    p_enroll.add_argument("--collection", required=True)
    p_enroll.add_argument("--concurrency", type=int, default=8)
    p_recognize = commands.add_parser("recognize", help="who is in PHOTO")
    p_recognize.add_argument("photo", type=Path)
    p_recognize.add_argument("--collection", required=True)
    p_recognize.add_argument("--threshold", type=float)
    p_recognize.add_argument("--limit", type=int)
    p_verify = commands.add_parser("verify", help="are A and B the same person")
    p_verify.add_argument("a", type=Path)
    p_verify.add_argument("b", type=Path)
    p_verify.add_argument("--threshold", type=float)
    args = parser.parse_args(argv)
    client = Client(args.url, args.api_key)
    try:
        if args.command == "enroll":
            return enroll(client, args.dir, args.collection, args.concurrency)
        if args.command == "recognize":
            options = {
                k: v for k, v in (("threshold", args.threshold), ("limit", args.limit)) if v is not None
            }
            answer = client.post(
                f"/collections/{args.collection}/recognize", images_body(args.photo) | options
            )
        else:
            options = {} if args.threshold is None else {"threshold": args.threshold}
            answer = client.post("/verify", images_body(args.a, args.b) | options)
    except ApiError as exc:
        print(f"facerest: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
