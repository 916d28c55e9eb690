"""Soak run: concurrent clients send mixed valid and invalid requests for a while; we count answers
by status and sample the memory (RSS) of the API and worker processes, to see that nothing fails
with a 5xx and nothing grows without bound. A share of the requests are 36 MP photos with
max_size 0 (the largest allowed input); Redis's key count (DBSIZE) and used memory (INFO memory)
are reported at the start and the end.

    python -m bench.soak                   # 180 s, 8 clients, starts its own Redis, worker and API
    python -m bench.soak --seconds 600 --clients 16
"""

from __future__ import annotations

import argparse
import base64
import json
import platform
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import redis
import requests

from deploy.launcher import Service, running_system
from testkit.photos import GROUP_PHOTOS, encode, scaled_photo

RESULTS = Path(__file__).parent / "results"
MiB = 1024 * 1024
LARGE_PHOTO = (7360, 4912)  # 36 MP: under the default FACEREST_MAX_IMAGE_PIXELS


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of request; ``expected`` is the set of statuses it may get."""

    name: str
    weight: int
    send: Callable[[requests.Session, str], int]
    expected: frozenset[int]


def _post(body: object) -> Callable[[requests.Session, str], int]:
    def send(session: requests.Session, url: str) -> int:
        return session.post(f"{url}/extract", json=body, timeout=120).status_code

    return send


def _raw(data: bytes) -> Callable[[requests.Session, str], int]:
    def send(session: requests.Session, url: str) -> int:
        headers = {"Content-Type": "application/json"}
        return session.post(f"{url}/extract", data=data, headers=headers, timeout=120).status_code

    return send


def _get(path: str) -> Callable[[requests.Session, str], int]:
    def send(session: requests.Session, url: str) -> int:
        return session.get(f"{url}{path}", timeout=30).status_code

    return send


def _async_then_poll(body: dict[str, object]) -> Callable[[requests.Session, str], int]:
    def send(session: requests.Session, url: str) -> int:
        accepted = session.post(f"{url}/extract", json={**body, "async": True}, timeout=120)
        if accepted.status_code != 202:
            return accepted.status_code
        status_url = f"{url}{accepted.json()['status_url']}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = session.get(status_url, timeout=30)
            if state.status_code != 200:
                return state.status_code
            status = state.json()["status"]
            if status in {"done", "failed"}:
                return 200 if status == "done" else 500  # a failed job counts as a server error
            time.sleep(0.2)
        return 504

    return send


def request_mix() -> list[Kind]:
    photo = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
    group = GROUP_PHOTOS["t1.jpg"].read_bytes()
    bomb = encode(np.zeros((9000, 9000, 3), np.uint8), ".png")
    large = scaled_photo("t1.jpg", LARGE_PHOTO)
    ok = frozenset({200})
    return [
        Kind("36 MP photo, max_size 0", 1, _post({"images": {"data": [_b64(large)]}, "max_size": 0}), ok),
        Kind("valid v1, 1 face", 6, _post({"images": {"data": [_b64(photo)]}}), ok),
        Kind(
            "valid v2, group + bad", 3, _post({"images": {"data": [_b64(group), "###"]}, "api_ver": "2"}), ok
        ),
        Kind("async + poll", 2, _async_then_poll({"images": {"data": [_b64(photo)]}}), ok),
        Kind("not base64", 2, _post({"images": {"data": ["@@@"]}}), frozenset({422})),
        Kind("not an image", 2, _post({"images": {"data": [_b64(b"plain text")]}}), frozenset({422})),
        Kind("truncated JPEG", 2, _post({"images": {"data": [_b64(photo[:2000])]}}), frozenset({422})),
        Kind("decompression bomb", 1, _post({"images": {"data": [_b64(bomb)]}}), frozenset({413})),
        Kind("too many images", 1, _post({"images": {"data": ["AAAA"] * 65}}), frozenset({413})),
        Kind("malformed JSON", 2, _raw(b'{"images": {"data": ['), frozenset({400})),
        Kind("wrong field type", 2, _post({"images": {"data": "x"}, "threshold": "high"}), frozenset({422})),
        Kind("loopback URL", 2, _post({"images": {"urls": ["http://127.0.0.1:9/a.jpg"]}}), frozenset({422})),
        Kind("file URL", 1, _post({"images": {"urls": ["file:///etc/passwd"]}}), frozenset({422})),
        Kind("GET /health", 1, _get("/health"), ok),
        Kind("GET /metrics", 1, _get("/metrics"), ok),
    ]


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    exceptions: Counter[str] = field(default_factory=Counter)

    def add(self, kind: str, status: int, seconds: float) -> None:
        with self.lock:
            self.statuses[(kind, status)] += 1
            self.latencies.setdefault(kind, []).append(seconds)


def client(url: str, kinds: list[Kind], until: float, seed: int, tally: Tally) -> None:
    rng = random.Random(seed)
    weights = [kind.weight for kind in kinds]
    session = requests.Session()
    while time.monotonic() < until:
        kind = rng.choices(kinds, weights)[0]
        start = time.perf_counter()
        try:
            status = kind.send(session, url)
        except requests.RequestException as exc:
            with tally.lock:
                tally.exceptions[f"{kind.name}: {type(exc).__name__}"] += 1
            continue
        tally.add(kind.name, status, time.perf_counter() - start)


def redis_state(client: redis.Redis) -> dict[str, float]:
    """Redis's key count (DBSIZE) and used memory (INFO memory)."""
    memory = client.info("memory")
    return {
        "keys": int(client.dbsize()),
        "used_memory_mib": round(int(memory["used_memory"]) / MiB, 2),
        "used_memory_rss_mib": round(int(memory["used_memory_rss"]) / MiB, 2),
    }


def rss_mib(service: Service) -> float:
    """RSS of a process and its children (gunicorn's master and workers), in MiB."""
    try:
        root = psutil.Process(service.process.pid)
        processes = [root, *root.children(recursive=True)]
        return float(sum(p.memory_info().rss for p in processes)) / MiB
    except psutil.NoSuchProcess:
        return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument(
        "--result-ttl-s",
        type=int,
        default=0,
        help="FACEREST_RESULT_TTL_S of the system under test (0: the default, 1 h); shorter than the "
        "run shows Redis's key count level off",
    )
    args = parser.parse_args()
    kinds = request_mix()
    tally = Tally()
    samples: list[dict[str, float]] = []
    settings = {"result_ttl_s": str(args.result_ttl_s)} if args.result_ttl_s else {}
    with running_system(None, **settings) as running:
        worker, api = running.service("worker"), running.service("api")
        redis_start = redis_state(running.client())
        started = time.monotonic()
        until = started + args.seconds
        threads = [
            threading.Thread(target=client, args=(api.url, kinds, until, seed, tally), daemon=True)
            for seed in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            samples.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "api_mib": round(rss_mib(api), 1),
                    "worker_mib": round(rss_mib(worker), 1),
                    "redis_keys": redis_state(running.client())["keys"],
                }
            )
            last = samples[-1]
            print(
                f"  t={last['t_s']:6.1f}s  API {last['api_mib']:7.1f} MiB  "
                f"worker {last['worker_mib']:7.1f} MiB  Redis keys {last['redis_keys']:6.0f}  "
                f"requests {sum(tally.statuses.values())}"
            )
            time.sleep(args.sample_s)
        alive = {"api": api.process.poll() is None, "worker": worker.process.poll() is None}
        health = requests.get(f"{api.url}/health", timeout=10).status_code
        redis_end = redis_state(running.client())

    report = summarize(args, kinds, tally, samples, alive, health)
    report["redis"] = {"start": redis_start, "end": redis_end}
    print(
        f"Redis: {redis_start['keys']} keys, {redis_start['used_memory_mib']} MiB at the start; "
        f"{redis_end['keys']} keys, {redis_end['used_memory_mib']} MiB at the end"
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "soak.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


def _growth(samples: list[dict[str, float]], key: str) -> dict[str, float]:
    """Median RSS over the second sixth of the run against the last sixth (warm-up left out),
    and the lowest of each: the worker's floor between large photos, which a leak would raise."""
    values = [s[key] for s in samples]
    sixth = max(1, len(values) // 6)
    early_values = values[sixth : 2 * sixth] or values[:1]
    late_values = values[-sixth:]
    early, late = statistics.median(early_values), statistics.median(late_values)
    return {
        "early_mib": early,
        "late_mib": late,
        "growth_mib": round(late - early, 1),
        "early_floor_mib": min(early_values),
        "late_floor_mib": min(late_values),
        "max_mib": max(values),
    }


def summarize(
    args: argparse.Namespace,
    kinds: list[Kind],
    tally: Tally,
    samples: list[dict[str, float]],
    alive: dict[str, bool],
    health: int,
) -> dict[str, object]:
    by_status: Counter[int] = Counter()
    unexpected = 0
    rows: list[dict[str, object]] = []
    for kind in kinds:
        statuses = {s: n for (name, s), n in tally.statuses.items() if name == kind.name}
        by_status.update(statuses)
        wrong = sum(n for s, n in statuses.items() if s not in kind.expected)
        unexpected += wrong
        latencies = tally.latencies.get(kind.name, [0.0])
        rows.append(
            {
                "kind": kind.name,
                "statuses": {str(s): n for s, n in sorted(statuses.items())},
                "unexpected": wrong,
                "median_ms": round(statistics.median(latencies) * 1000, 1),
                "p95_ms": round(float(np.percentile(latencies, 95)) * 1000, 1),
            }
        )
    total = sum(by_status.values())
    print(f"\n{args.seconds:.0f} s, {args.clients} clients, {total} requests, {platform.machine()}")
    print("| request | statuses | unexpected | median ms | p95 ms |\n|---|---|---|---|---|")
    for row in rows:
        counts = ", ".join(f"{s}: {n}" for s, n in dict(row["statuses"]).items())  # type: ignore[call-overload]
        print(f"| {row['kind']} | {counts} | {row['unexpected']} | {row['median_ms']} | {row['p95_ms']} |")
    server_errors = sum(n for s, n in by_status.items() if s >= 500)
    print(f"\nby status: {dict(sorted(by_status.items()))}; 5xx: {server_errors}; unexpected: {unexpected}")
    print(f"client exceptions: {dict(tally.exceptions) or 0}")
    picks = samples[:: max(1, len(samples) // 10)]
    picks += [] if picks[-1] is samples[-1] else samples[-1:]
    print(
        "\nRSS (MiB) and Redis keys over time\n| t (s) | "
        + " | ".join(f"{p['t_s']:.0f}" for p in picks)
        + " |"
    )
    print("|---|" + "---|" * len(picks))
    for key, label in (("api_mib", "API"), ("worker_mib", "worker"), ("redis_keys", "Redis keys")):
        print(f"| {label} | " + " | ".join(f"{p[key]:.0f}" for p in picks) + " |")
    memory = {"api": _growth(samples, "api_mib"), "worker": _growth(samples, "worker_mib")}
    for name, growth in memory.items():
        print(
            f"{name} RSS: {growth['early_mib']:.1f} MiB early -> {growth['late_mib']:.1f} MiB late "
            f"(growth {growth['growth_mib']:+.1f} MiB, max {growth['max_mib']:.1f} MiB; lowest "
            f"{growth['early_floor_mib']:.1f} early, {growth['late_floor_mib']:.1f} late)"
        )
    print(f"processes alive at the end: {alive}; /health: {health}")
    return {
        "seconds": args.seconds,
        "clients": args.clients,
        "requests": total,
        "by_status": {str(s): n for s, n in sorted(by_status.items())},
        "server_errors": server_errors,
        "unexpected": unexpected,
        "client_exceptions": dict(tally.exceptions),
        "kinds": rows,
        "memory": memory,
        "rss_samples": samples,
        "alive": alive,
        "health": health,
    }


if __name__ == "__main__":
    main()
