"""What one recognize adds over /extract, end to end, against a collection of N stored faces.

    python -m bench.recognition_latency --faces 100000 [--gallery postgres]

Starts Redis, a worker and the API (SQLite gallery in a temporary data directory, or a
PostgreSQL from the pgserver wheel), bulk loads N faces (random unit vectors bound to the
worker's real recognizer, a real crop each) into a collection, then times the same one-face
photo (yaoming.jpg) through POST /extract and POST /collections/<c>/recognize in turns:
medians of each and their difference. The worker's first search loads its SQLite copy: warm-up.
"""

from __future__ import annotations

import argparse
import base64
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import requests

from bench.gallery_scale import load
from bench.timing import alternating_ms
from deploy.launcher import running_system
from shared.contract import RecognizerInfo
from shared.gallery import open_gallery
from testkit.photos import GROUP_PHOTOS
from testkit.postgres import running_postgres

PHOTO = GROUP_PHOTOS["yaoming.jpg"]
COLLECTION = "scale"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--gallery", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with ExitStack() as exits:
        folder = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="facerest-reclat-")))
        settings = {"attributes": ""}
        if args.gallery == "postgres":
            settings["gallery_url"] = exits.enter_context(running_postgres())
        running = exits.enter_context(running_system(folder, **settings))
        api = running.api_url
        info = requests.get(f"{api}/info", timeout=10).json()
        r = info["recognizers"][0]
        recognizer = RecognizerInfo(r["key"], r["name"], r["version"], r["license"], r["dimension"])
        gallery = open_gallery(settings.get("gallery_url", ""), folder)
        load(gallery, args.faces, np.random.default_rng(14), recognizer, COLLECTION)
        gallery.close()

        body = {"images": {"data": [base64.b64encode(PHOTO.read_bytes()).decode()]}}

        def extract() -> None:
            requests.post(f"{api}/extract", json={**body, "api_ver": "2"}, timeout=120).raise_for_status()

        def recognize() -> None:
            reply = requests.post(f"{api}/collections/{COLLECTION}/recognize", json=body, timeout=120)
            reply.raise_for_status()
            assert len(reply.json()["data"][0]["faces"]) == 1

        medians = alternating_ms({"extract": extract, "recognize": recognize}, runs=args.runs)
        load_average = os.getloadavg()[0]
        print(f"gallery {args.gallery}, {args.faces:,} faces, {args.runs} turns, load {load_average:.1f}")
        print(f"/extract   p50 {medians['extract']:.1f} ms")
        print(f"recognize  p50 {medians['recognize']:.1f} ms")
        print(f"added      {medians['recognize'] - medians['extract']:+.1f} ms")


if __name__ == "__main__":
    main()
