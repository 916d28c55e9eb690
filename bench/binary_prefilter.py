"""A two-stage gallery search at 1M faces, in one process: sign-bit codes, then exact re-ranking.

    python -m bench.binary_prefilter --size 1000000 --candidates 64,256,1024 --threads 1,2

The workload of ``bench.gallery_scale`` (random 512-d unit vectors, queries planted at cosine
about 0.8 to one of them), searched in two stages:

1. Every stored vector is kept as its 512 sign bits (64 bytes: 64 MB per million faces). A query's
   Hamming distance to all of them is an XOR and a bit count over that array.
2. The ``C`` nearest codes are re-ranked by exact cosine on their float32 vectors (here from
   memory; a store would fetch those C rows by key).

Reports p50/p99 per query and recall@1 against exact search (numpy over every float32 vector), per
C and per number of threads sharing the scan (the store uses up to 4). This is the search method
of the PostgreSQL store (shared/gallery/postgres.py, whose codes helpers, shared/gallery/codes.py,
it uses), without the database round trip.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from bench.gallery_scale import CHUNK, NOISE, SEED, unit_rows
from shared.gallery.codes import hamming, sign_codes


def search(
    query: NDArray[np.float32],
    codes: NDArray[np.uint64],
    vectors: NDArray[np.float32],
    candidates: int,
    pool: Executor,
    threads: int,
) -> int:
    """The best stored row for ``query``: the ``candidates`` nearest codes (and any tied with the
    last of them), re-ranked by exact cosine."""
    found = hamming(codes, sign_codes(query[None, :])[:, 0], pool, threads).nearest(candidates)
    return int(found[np.argmax(vectors[found] @ query)])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--candidates", default="64,256,1024")
    parser.add_argument("--threads", default="1,2", help="threads sharing each scan")
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    stored = np.concatenate(
        [unit_rows(rng, min(CHUNK, args.size - start)) for start in range(0, args.size, CHUNK)]
    )
    started = time.perf_counter()
    codes = np.concatenate([sign_codes(stored[s : s + CHUNK]) for s in range(0, args.size, CHUNK)], axis=1)
    code_s = time.perf_counter() - started
    planted = rng.integers(0, args.size, args.queries)
    probes = stored[planted] + NOISE * unit_rows(rng, args.queries)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    exact = np.argmax(probes @ stored.T, axis=1)
    print(
        f"cpu cores: {os.cpu_count()}; {args.size:,} faces, {args.queries} queries; load average "
        f"{os.getloadavg()[0]:.1f}; codes {codes.nbytes / 2**20:.0f} MiB, made in {code_s:.1f} s"
    )
    print("threads  candidates  p50_ms  p99_ms  recall@1  planted@1")
    for threads in (int(t) for t in args.threads.split(",")):
        with ThreadPoolExecutor(threads) as pool:
            for count in (int(c) for c in args.candidates.split(",")):
                times, hits, planted_hits = [], 0, 0
                for probe, truth, plant in zip(probes, exact, planted, strict=True):
                    begun = time.perf_counter()
                    best = search(probe, codes, stored, count, pool, threads)
                    times.append((time.perf_counter() - begun) * 1000)
                    hits += best == truth
                    planted_hits += best == plant
                times.sort()
                p99 = times[min(len(times) - 1, round(0.99 * len(times)))]
                print(
                    f"{threads:7} {count:11} {statistics.median(times):7.2f} {p99:7.2f} "
                    f"{hits / len(probes):9.3f} {planted_hits / len(probes):10.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
