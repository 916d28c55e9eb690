"""What facerest-client costs per request next to a bare HTTP call, side by side.

One synchronous /extract of t1.jpg (6 faces) at a time, the variants interleaved round by round
so that a busy neighbour weighs on all of them alike. Per variant: median wall time and the load
generator's CPU time per request (what a client adds where it shares the machine with the
service, as bench/throughput.py's HTTP runs do).

python -m bench.client_overhead                 # starts its own Redis, worker and API
python -m bench.client_overhead --url http://localhost:18081 --rounds 40
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import msgpack
import requests
from facerest_client import FaceRest

from deploy.launcher import running_system
from testkit.photos import GROUP_PHOTOS

Variant = Callable[[], int]  # one request; returns the faces found


def variants(url: str, photo: bytes) -> dict[str, Variant]:
    session = requests.Session()
    raw = httpx.Client(base_url=url, timeout=60)
    packed_client = FaceRest(url)
    json_client = FaceRest(url, use_msgpack=False)
    b64 = base64.b64encode(photo).decode()

    def requests_json() -> int:
        response = session.post(
            f"{url}/extract", json={"images": {"data": [b64]}, "api_ver": "2"}, timeout=60
        )
        response.raise_for_status()
        return len(response.json()["data"][0]["faces"])

    def httpx_msgpack() -> int:
        body = msgpack.packb({"images": {"data": [photo]}, "api_ver": "2"})
        headers = {"Content-Type": "application/msgpack", "Accept": "application/x-msgpack"}
        response = raw.post("/extract", content=body, headers=headers)
        response.raise_for_status()
        return len(msgpack.unpackb(response.content)["data"][0]["faces"])

    return {
        "requests, JSON base64 (no client)": requests_json,
        "httpx, MessagePack raw bytes (no client)": httpx_msgpack,
        "facerest-client, MessagePack": lambda: len(packed_client.extract([photo]).images[0].faces),
        "facerest-client, JSON": lambda: len(json_client.extract([photo]).images[0].faces),
    }


@contextmanager
def system(url: str | None) -> Iterator[str]:
    if url is not None:
        yield url
        return
    with running_system() as running:
        yield running.api_url


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="a running system (default: start one)")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    photo = GROUP_PHOTOS["t1.jpg"].read_bytes()
    with system(args.url) as url:
        calls = variants(url, photo)
        for call in calls.values():  # warm-up: connections, the worker's first batches
            for _ in range(2):
                call()
        wall: dict[str, list[float]] = {name: [] for name in calls}
        cpu: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(args.rounds):
            for name, call in calls.items():
                start, cpu_start = time.perf_counter(), time.process_time()
                assert call() == 6
                wall[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((time.process_time() - cpu_start) * 1000)
    base = next(iter(calls))
    print(f"{args.rounds} rounds, t1.jpg, one request at a time, variants interleaved")
    print("| variant | median ms | vs first | client CPU ms per request (median) |\n|---|---|---|---|")
    for name in calls:
        median = statistics.median(wall[name])
        ratio = median / statistics.median(wall[base])
        print(f"| {name} | {median:.1f} | {ratio:.2f} | {statistics.median(cpu[name]):.2f} |")


if __name__ == "__main__":
    main()
