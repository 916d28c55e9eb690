"""``facerest enroll DIR --collection C`` / ``facerest ingest DIR --collection C`` /
``facerest recognize PHOTO --collection C`` / ``facerest verify A B`` /
``facerest video FILE [--collection C]``, against a running facerest (``--url``, default
http://127.0.0.1:18081).

video: uploads the file (streamed, never read whole) or has the service fetch a URL, shows a
progress bar on stderr while the workers analyse its segments, and prints each track at the end:
when it starts and ends, how long, and who (the collection's subject and similarity, or unknown).

ingest: people discovery. Every image under DIR (recursive) is sent, ``--batch`` per request,
its path under DIR as its photo id; each face is stored and clustered by the service. Resumable
and idempotent: the SHA-256 of every image ingested is recorded in
``DIR/.facerest-ingest-<collection>.json`` and a second run skips those (the service also answers
a photo id or bytes it has as stored).

enroll: one subfolder per subject, its images inside. Images go in parallel (``--concurrency``),
one request each, with a progress line on stderr. Resumable: what was enrolled is recorded in
``DIR/.facerest-enroll-<collection>.json`` (path, size, mtime) and skipped next time; and the
server enrolls an image once per subject anyway (by its hash). recognize and verify print the
answer as JSON. Requests go through ``FaceRest`` (MessagePack, retries with Idempotency-Key).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from pathlib import Path

import httpx

from facerest_client._calls import RecognizeOptions, VerifyOptions, VideoOptions
from facerest_client.client import FaceRest
from facerest_client.errors import FaceRestError, InvalidName
from facerest_client.names import check_name
from facerest_client.types import Recognition, Verification, Video

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
DEFAULT_URL = "http://127.0.0.1:18081"
API_KEY_VARIABLE = "FACEREST_API_KEY"
# Exit status as diff and cmp have it: 1 is an answer (different people), so that a script can
# tell it from a failure; 2 is also what argparse exits with on bad arguments.
EXIT_OK = 0
EXIT_DIFFERENT = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C (128 + SIGINT)
EXIT_STATUS = """exit status:
  0  done; verify: the same person
  1  verify: different people
  130  video: stopped by Ctrl-C (the video is cancelled on the service)
  2  an error: bad arguments (a collection name the service would refuse included), an error
     answer from the service, no connection, an image that cannot be read; enroll: an image
     that failed (listed on stderr; a folder whose name is no subject name fails its images)"""
ENVIRONMENT = f"""environment:
  {API_KEY_VARIABLE}  the API key, when --api-key is not given"""


def resolve_api_key(flag: str | None, environ: Mapping[str, str]) -> str | None:
    """``--api-key`` when given (``--api-key ''`` sends none), else $FACEREST_API_KEY."""
    if flag is not None:
        return flag
    return environ.get(API_KEY_VARIABLE) or None


def verify_status(answer: Verification) -> int:
    return EXIT_OK if answer.same else EXIT_DIFFERENT


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


def _run_all(
    calls: list[Callable[[], None]],
    concurrency: int,
    state_file: Path,
    done: dict[str, str],
    failures: list[str],
) -> None:
    """Run ``calls`` on ``concurrency`` threads (httpx.Client is safe to share between threads:
    one connection pool for all of them); the photos ``done`` are recorded in ``state_file``
    even when a call raises or the run is interrupted, so that the next run resumes."""
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            for future in as_completed([pool.submit(call) for call in calls]):
                future.result()
    finally:
        state_file.write_text(json.dumps(done, indent=0, sort_keys=True))
    print(file=sys.stderr)
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)


def enroll(client: FaceRest, root: Path, collection: str, concurrency: int) -> int:
    # Before the name makes a file name; a bad folder name fails its images only (below).
    check_name("collection", collection)
    state_file = root / f".facerest-enroll-{collection}.json"
    done: dict[str, str] = json.loads(state_file.read_text()) if state_file.exists() else {}
    todo = [(s, p) for s, p in _photos(root) if done.get(str(p.relative_to(root))) != _stamp(p)]
    skipped = sum(1 for _ in _photos(root)) - len(todo)
    progress = Progress(len(todo))
    lock = threading.Lock()
    failures: list[str] = []

    def one(subject: str, path: Path) -> None:
        try:
            client.enroll(collection, subject, [path])
        except (FaceRestError, InvalidName, httpx.HTTPError, OSError) as exc:
            with lock:
                failures.append(f"{path}: {exc}")
            progress.step(False)
            return
        with lock:
            done[str(path.relative_to(root))] = _stamp(path)
        progress.step(True)

    _run_all([partial(one, s, p) for s, p in todo], concurrency, state_file, done, failures)
    print(f"enrolled {len(todo) - len(failures)}, skipped {skipped} (done before), failed {len(failures)}")
    return EXIT_ERROR if failures else EXIT_OK


def _all_photos(root: Path) -> list[Path]:
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def ingest(client: FaceRest, root: Path, collection: str, batch: int, concurrency: int) -> int:
    check_name("collection", collection)
    state_file = root / f".facerest-ingest-{collection}.json"
    done: dict[str, str] = json.loads(state_file.read_text()) if state_file.exists() else {}
    seen = set(done.values())
    todo: list[tuple[Path, str]] = []
    photos = _all_photos(root)
    for path in photos:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            todo.append((path, digest))
            seen.add(digest)  # the same bytes twice in DIR: sent once
    progress = Progress(len(todo))
    lock = threading.Lock()
    failures: list[str] = []
    faces = 0

    def one(chunk: list[tuple[Path, str]]) -> None:
        nonlocal faces
        try:
            answer = client.ingest(
                collection,
                [p for p, _ in chunk],
                photo_ids=[p.relative_to(root).as_posix() for p, _ in chunk],
            )
        except (FaceRestError, InvalidName, httpx.HTTPError, OSError) as exc:
            with lock:
                failures.extend(f"{p}: {exc}" for p, _ in chunk)
            for _ in chunk:
                progress.step(False)
            return
        for (path, digest), photo in zip(chunk, answer.photos, strict=True):
            with lock:
                if photo.ok:
                    done[path.relative_to(root).as_posix()] = digest
                    faces += len(photo.faces)
                else:
                    failures.append(f"{path}: {photo.error}")
            progress.step(photo.ok)

    chunks = [todo[i : i + batch] for i in range(0, len(todo), batch)]
    _run_all([partial(one, chunk) for chunk in chunks], concurrency, state_file, done, failures)
    print(
        f"ingested {len(todo) - len(failures)} photos ({faces} faces), skipped {len(photos) - len(todo)} "
        f"(ingested before, or the same bytes twice), failed {len(failures)}"
    )
    return EXIT_ERROR if failures else EXIT_OK


def clock(seconds: float) -> str:
    """A time in a video as m:ss.s (h:mm:ss.s past an hour)."""
    minutes, rest = divmod(round(max(seconds, 0.0), 1), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:04.1f}" if hours else f"{minutes}:{rest:04.1f}"


def video_progress_line(video: Video, width: int = 30) -> str:
    """The progress bar of ``facerest video``: segments done, frames analysed, tracks so far."""
    progress = video.progress
    filled = round(width * progress.fraction)
    bar = "#" * filled + "." * (width - filled)
    return (
        f"[{bar}] {progress.segments_done}/{progress.segments} segments  "
        f"{progress.frames_done}/{progress.frames} frames  {len(video.tracks)} tracks"
    )


def track_lines(video: Video) -> list[str]:
    """Who appears, when and for how long: one line per track, in order of appearance."""
    lines = []
    for track in sorted(video.tracks, key=lambda t: (t.start_s, t.track)):
        who = "unknown" if track.subject is None else track.subject
        if track.similarity is not None:
            who += f" ({track.similarity:.2f})"
        lines.append(
            f"{clock(track.start_s)} - {clock(track.end_s)}  {track.duration_s:6.1f} s  "
            f"track {track.track:<4d} {who}"
        )
    return lines


def video(client: FaceRest, source: str, options: VideoOptions, interval_s: float) -> int:
    """Upload (or have the service fetch) a video, show its progress, print its tracks. Ctrl-C
    cancels it on the service too."""
    if source.startswith(("http://", "https://")):
        submitted = client.submit_video(url=source, **options)
    else:
        submitted = client.submit_video(Path(source), **options)
    print(f"video {submitted.id}", file=sys.stderr)

    def show(state: Video) -> None:
        print(f"\r{video_progress_line(state)}", end="", file=sys.stderr, flush=True)

    try:
        done = client.wait_video(submitted.id, progress=show, interval_s=interval_s)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        client.cancel_video(submitted.id)
        print(f"facerest: cancelled video {submitted.id}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(file=sys.stderr)
    if done.status == "failed":
        problem = "failed" if done.error is None else f"{done.error.message} ({done.error.code})"
        print(f"facerest: video {done.id}: {problem}", file=sys.stderr)
        return EXIT_ERROR
    duration = "?" if done.duration_s is None else clock(done.duration_s)
    print(f"{len(done.tracks)} tracks in {duration}")
    for line in track_lines(done):
        print(line)
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facerest",
        description=__doc__,
        epilog=f"{ENVIRONMENT}\n\n{EXIT_STATUS}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the API (default {DEFAULT_URL})")
    parser.add_argument("--api-key", help=f"sent as X-API-Key (default: ${API_KEY_VARIABLE}; '' sends none)")
    commands = parser.add_subparsers(dest="command", required=True)
    p_enroll = commands.add_parser("enroll", help="enroll DIR/<subject>/<images>")
    p_enroll.add_argument("dir", type=Path)
    p_enroll.add_argument("--collection", required=True)
    p_enroll.add_argument("--concurrency", type=int, default=8)
    p_ingest = commands.add_parser("ingest", help="people discovery: every image under DIR, recursively")
    p_ingest.add_argument("dir", type=Path)
    p_ingest.add_argument("--collection", required=True)
    p_ingest.add_argument("--batch", type=int, default=8, help="images per request (default 8)")
    p_ingest.add_argument("--concurrency", type=int, default=4)
    p_recognize = commands.add_parser("recognize", help="who is in PHOTO")
    p_recognize.add_argument("photo", type=Path)
    p_recognize.add_argument("--collection", required=True)
    p_recognize.add_argument("--threshold", type=float)
    p_recognize.add_argument("--limit", type=int)
    p_verify = commands.add_parser(
        "verify",
        help="are A and B the same person (exit status 0: yes, 1: no)",
        epilog=EXIT_STATUS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_verify.add_argument("a", type=Path)
    p_verify.add_argument("b", type=Path)
    p_verify.add_argument("--threshold", type=float)
    p_video = commands.add_parser(
        "video", help="who appears in a video file (or URL), when and for how long; Ctrl-C cancels it"
    )
    p_video.add_argument("file", help="a video file, or an http(s) URL the service fetches")
    p_video.add_argument("--collection", help="name the faces from this collection's subjects")
    p_video.add_argument("--fps", type=float, help="frames analysed per second (service default 2; 0: all)")
    p_video.add_argument("--threshold", type=float, help="similarity to name a subject")
    p_video.add_argument("--interval", type=float, default=1.0, help="seconds between progress updates")
    return parser


def _video_options(args: argparse.Namespace) -> VideoOptions:
    options: VideoOptions = {}
    if args.collection is not None:
        options["collection"] = args.collection
    if args.fps is not None:
        options["fps"] = args.fps
    if args.threshold is not None:
        options["recognition_threshold"] = args.threshold
    return options


def _print(answer: Recognition | Verification) -> None:
    print(json.dumps(dataclasses.asdict(answer), indent=2))


def run(client: FaceRest, args: argparse.Namespace) -> int:
    """The parsed command against the service; its exit status."""
    try:
        if args.command == "enroll":
            return enroll(client, args.dir, args.collection, args.concurrency)
        if args.command == "ingest":
            return ingest(client, args.dir, args.collection, args.batch, args.concurrency)
        if args.command == "recognize":
            options: RecognizeOptions = {}
            if args.threshold is not None:
                options["threshold"] = args.threshold
            if args.limit is not None:
                options["limit"] = args.limit
            _print(client.recognize(args.collection, [args.photo], **options))
            return EXIT_OK
        if args.command == "video":
            return video(client, args.file, _video_options(args), args.interval)
        verify: VerifyOptions = {} if args.threshold is None else {"threshold": args.threshold}
        answer = client.verify([args.a, args.b], **verify)
        _print(answer)
        return verify_status(answer)
    except (FaceRestError, InvalidName, httpx.HTTPError, OSError) as exc:
        print(f"facerest: {exc}", file=sys.stderr)
        return EXIT_ERROR


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    with FaceRest(args.url, api_key=resolve_api_key(args.api_key, os.environ)) as client:
        return run(client, args)


if __name__ == "__main__":
    sys.exit(main())
