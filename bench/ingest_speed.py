"""People discovery's ingest against /extract, side by side on one running system (docs/people.md).

    python -m bench.ingest_speed [--rounds 3] [--clients 4] [--batch 8]

One stack (Redis, one worker, the API: deploy/launcher.py), the same images (bench/workload.py)
for both endpoints, and the requests the command-line ingest sends (``--batch`` images per
request on ``--clients`` threads, as ``facerest ingest``): ``POST /extract`` with embeddings (its
default) and ``POST /collections/{c}/photos``. The two alternate, one pass over the images at a
time, ``--rounds`` passes each, so load from elsewhere on the machine falls on both alike. Every
pass sends new bytes (the image plus a few bytes after its end, which decoders ignore): an ingest
of bytes it has stored is answered from the store and would cost nothing. The target is ingest at
>= 0.9x /extract's images/s (issue 27).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import os
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import requests

from bench.workload import workload
from deploy.launcher import running_system

TIMEOUT_S = 600


def _unique(jpeg: bytes, tag: str) -> bytes:
    """The same picture as new bytes: a comment after the end of the JPEG."""
    return jpeg + f"pass {tag}".encode()


def _post(session: requests.Session, url: str, images: list[bytes]) -> int:
    body = {"images": {"data": [base64.b64encode(image).decode() for image in images]}}
    reply = session.post(url, json=body, timeout=TIMEOUT_S)
    reply.raise_for_status()
    return len(images)


def run_pass(send: Callable[[list[bytes]], int], batches: list[list[bytes]], clients: int) -> float:
    """Seconds to send every batch from ``clients`` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, batches))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--copies", type=int, default=3, help="each workload image this many times per pass")
    args = parser.parse_args()
    images = [item.jpeg for item in workload()] * args.copies
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return cast(requests.Session, local.session)

    seconds: dict[str, float] = {"extract": 0.0, "ingest": 0.0}
    per_round: dict[str, list[float]] = {"extract": [], "ingest": []}
    counter = itertools.count()
    with running_system() as running:
        api = running.api_url
        endpoints = {
            "extract": f"{api}/extract",
            "ingest": f"{api}/collections/bench-ingest/photos",
        }
        # Warm-up: the models' first runs, the store's tables.
        for name, url in endpoints.items():
            _post(requests.Session(), url, [_unique(images[0], f"warm-{name}")])
        for round_ in range(args.rounds):
            for name, url in endpoints.items():
                tag = f"{round_}-{name}-{next(counter)}"
                fresh = [_unique(image, f"{tag}-{i}") for i, image in enumerate(images)]
                batches = [fresh[i : i + args.batch] for i in range(0, len(fresh), args.batch)]

                def send(batch: list[bytes], url: str = url) -> int:
                    return _post(session(), url, batch)

                took = run_pass(send, batches, args.clients)
                seconds[name] += took
                per_round[name].append(took)
                print(f"round {round_ + 1} {name:8s} {len(fresh) / took:6.2f} images/s", flush=True)
        listed = requests.get(endpoints["ingest"].replace("/photos", "/clusters"), timeout=60).json()
        faces = sum(c["size"] for c in listed["clusters"]) + listed["unclustered"]
    total = len(images) * args.rounds
    rates = {name: total / s for name, s in seconds.items()}
    load = os.getloadavg()
    print(
        f"\n{total} images per endpoint, {args.batch} per request, {args.clients} clients, "
        f"{os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
    )
    print(f"the collection holds {faces} faces in {len(listed['clusters'])} clusters at the end")
    print(f"/extract (embeddings)          {rates['extract']:6.2f} images/s")
    print(f"/collections/{{c}}/photos ingest {rates['ingest']:6.2f} images/s")
    print(f"ingest / extract               {rates['ingest'] / rates['extract']:6.3f}x (target >= 0.9x)")
    # Each round's pair ran back to back: their ratio sees the same load.
    pairs = sorted(e / i for e, i in zip(per_round["extract"], per_round["ingest"], strict=True))
    print(f"per round: {' '.join(f'{r:.2f}' for r in pairs)}, median {statistics.median(pairs):.3f}x")


if __name__ == "__main__":
    main()
