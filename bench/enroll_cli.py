"""Enrolling a folder through the CLI against /extract of the same photos, in images/s.

    python -m bench.enroll_cli --photos 1000

Starts Redis, a worker and the API (SQLite gallery), writes N one-face photos (yaoming.jpg at N
slightly different sizes, every other one mirrored: N distinct files) into N subject folders,
then, in turns: ``facerest enroll`` of the folder (a fresh collection each turn) and the same
photos through POST /extract with the same concurrency (one image per request, like the CLI).
Reports each side's images/s and their ratio (the target: enroll >= 0.9x extract).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import requests
from facerest_client.cli import main as cli_main

from deploy.launcher import running_system
from testkit.photos import GROUP_PHOTOS, encode, read_rgb

CONCURRENCY = 8


def write_photos(root: Path, count: int) -> list[Path]:
    base = read_rgb(GROUP_PHOTOS["yaoming.jpg"])
    paths = []
    for i in range(count):
        scale = 0.6 + 0.4 * i / max(count - 1, 1)
        image = base[:, ::-1] if i % 2 else base
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        folder = root / f"subject{i:05d}"
        folder.mkdir()
        path = folder / "photo.jpg"
        resized = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)
        path.write_bytes(encode(np.ascontiguousarray(resized)))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=2)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="facerest-enroll-") as tmp,
        running_system(Path(tmp) / "system", attributes="") as running,
    ):
        api = running.api_url
        photos_dir = Path(tmp) / "photos"
        photos_dir.mkdir()
        paths = write_photos(photos_dir, args.photos)
        bodies = [{"images": {"data": [base64.b64encode(p.read_bytes()).decode()]}} for p in paths]

        def extract_all() -> None:
            def one(body: dict[str, object]) -> None:
                requests.post(f"{api}/extract", json=body, timeout=300).raise_for_status()

            with ThreadPoolExecutor(CONCURRENCY) as pool:
                list(pool.map(one, bodies))

        rates: dict[str, list[float]] = {"extract": [], "enroll": []}
        for turn in range(args.turns):
            started = time.perf_counter()
            extract_all()
            rates["extract"].append(args.photos / (time.perf_counter() - started))
            for state in photos_dir.glob(".facerest-enroll-*"):
                state.unlink()
            started = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
                code = cli_main(
                    [
                        "--url",
                        api,
                        "enroll",
                        str(photos_dir),
                        "--collection",
                        f"bench{turn}",
                        "--concurrency",
                        str(CONCURRENCY),
                    ]
                )
            assert code == 0
            rates["enroll"].append(args.photos / (time.perf_counter() - started))
        extract, enroll = statistics.median(rates["extract"]), statistics.median(rates["enroll"])

        def turns(name: str) -> str:
            return ", ".join(f"{rate:.2f}" for rate in rates[name])

        load_average = os.getloadavg()[0]
        print(f"{args.photos} photos, {args.turns} turns, concurrency {CONCURRENCY}, load {load_average:.1f}")
        print(f"/extract          {extract:.2f} images/s  (turns: {turns('extract')})")
        print(f"facerest enroll   {enroll:.2f} images/s  (turns: {turns('enroll')})")
        print(f"enroll / extract  {enroll / extract:.2f}")


if __name__ == "__main__":
    main()
