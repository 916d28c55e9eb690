"""Fairness between API keys: one key floods asynchronous requests, another sends one synchronous
/extract at a time; the other key's latency and refusals, with the per-key shares off and on, and
with one queue or the default lanes.

python -m bench.fairness                  # starts its own Redis, one worker and two APIs
python -m bench.fairness --seconds 30 --flooders 8

The phases run on the same system, one after the other: "no shares" is an API whose per-key caps
are too large to matter (only max_queue_depth bounds the flood), "shares" one with the defaults
(FACEREST_MAX_QUEUED_PER_KEY, FACEREST_MAX_IMAGES_IN_FLIGHT_PER_KEY); "1 lane" sends every job to
lane 0 (FACEREST_QUEUE_LANES=1: arrival order), the last API has the default lanes (the worker
reads them all, lane 0 included). The queue is drained between them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from deploy.launcher import Stack, running_system, wait_until
from shared.jobs import JobStore
from shared.queue import lane_for, queue_depth, queue_lanes
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS

FLOOD_KEY, OTHER_KEY = "bench-flood", "bench-other"
ONE_LANE = {"FACEREST_QUEUE_LANES": "1"}
UNBOUNDED = {
    "FACEREST_MAX_QUEUED_PER_KEY": "1000000",
    "FACEREST_MAX_IMAGES_IN_FLIGHT_PER_KEY": "1000000",
    **ONE_LANE,
}
# A refused flooder tries again after this long, ignoring Retry-After as a hostile client would.
FLOOD_PAUSE_S = 0.05
# Counted in place of a status: the connection closed or reset without an answer.
DROPPED = 0


@dataclass
class Phase:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    other: Counter[int] = field(default_factory=Counter)
    flood: Counter[int] = field(default_factory=Counter)

    def row(self) -> str:
        served = np.array(self.latencies_ms) if self.latencies_ms else np.array([float("nan")])
        p50, p99 = np.percentile(served, 50), np.percentile(served, 99)
        counts = [self.other[429], self.other[503], self.other[DROPPED]]
        counts += [self.flood[202], self.flood[429], self.flood[503], self.flood[DROPPED]]
        cells = [self.name, str(len(self.latencies_ms)), *(f"{v:.0f}" for v in (p50, p99, max(served)))]
        return "| " + " | ".join(cells + [str(count) for count in counts]) + " |"


def _body(photo: bytes, **options: Any) -> dict[str, Any]:
    return {"images": {"data": [base64.b64encode(photo).decode()]}, **options}


def run_phase(name: str, url: str, seconds: float, flooders: int) -> Phase:
    phase = Phase(name)
    stop = threading.Event()
    lock = threading.Lock()
    flood_body = _body(GROUP_PHOTOS["gdp.jpg"].read_bytes(), **{"async": True})
    other_body = _body(GROUP_PHOTOS["yaoming.jpg"].read_bytes())

    def flood() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    status = session.post(
                        f"{url}/extract", json=flood_body, headers={"X-API-Key": FLOOD_KEY}, timeout=60
                    ).status_code
                except requests.ConnectionError:
                    status = DROPPED
                with lock:
                    phase.flood[status] += 1
                if status != 202:
                    time.sleep(FLOOD_PAUSE_S)

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(flooders)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let the flood take the queue first
    deadline = time.monotonic() + seconds
    with requests.Session() as session:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                response = session.post(
                    f"{url}/extract", json=other_body, headers={"X-API-Key": OTHER_KEY}, timeout=120
                )
            except requests.ConnectionError:
                phase.other[DROPPED] += 1
                continue
            phase.other[response.status_code] += 1
            if response.status_code == 200:
                phase.latencies_ms.append((time.perf_counter() - start) * 1000)
            else:
                time.sleep(float(response.headers.get("Retry-After", "1")))
    stop.set()
    for thread in threads:
        thread.join()
    return phase


def drain(system: Stack) -> None:
    """Wait until no job is queued or running, so that a phase does not inherit the last's flood."""
    lanes = queue_lanes(load_settings())
    with system.client() as client:
        store = JobStore(client, "facerest", 3600)
        wait_until(lambda: queue_depth(client, lanes) == 0 and not store.holders(), 600, "the queue to drain")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase")
    parser.add_argument("--flooders", type=int, default=8, help="threads sending the flood")
    args = parser.parse_args()
    keys = f"{FLOOD_KEY},{OTHER_KEY}"
    with running_system(api_keys=keys) as system:
        unbounded = system.start_api(extra_env=UNBOUNDED)
        one_lane = system.start_api(extra_env=ONE_LANE)
        apis = (
            ("no shares (caps 10^6), 1 lane", unbounded.url),
            ("shares, 1 lane", one_lane.url),
            ("shares and lanes (defaults)", system.api_url),
        )
        phases = []
        for name, url in apis:
            drain(system)
            phases.append(run_phase(name, url, args.seconds, args.flooders))
        drain(system)
    print(f"one key floods async /extract of gdp.jpg ({args.flooders} threads); the other sends yaoming.jpg")
    print("one synchronous /extract at a time; latencies of its served requests, in ms")
    settings = load_settings()
    flood_lane, other_lane = (
        lane_for(settings, hashlib.sha256(key.encode()).hexdigest()) for key in keys.split(",")
    )
    print(f"lanes with the defaults: the flood's {flood_lane}, the other key's {other_lane}\n")
    print(
        "| API | other's 200s | p50 | p99 | max | other's 429 | other's 503 | other's dropped "
        "| flood 202 | flood 429 | flood 503 | flood dropped |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for phase in phases:
        print(phase.row())


if __name__ == "__main__":
    main()
