"""Gallery search at scale: latency p50/p99 and recall@1 against exact search, per store and size.

    python -m bench.gallery_scale --sizes 10000,100000 --stores sqlite,postgres

Each size is a fresh collection of N subjects with one face each: random 512-d unit vectors
(ArcFace's dimension) and a real aligned crop (Tom_Hanks_54745.png as JPEG) per face, bulk
loaded with ``Gallery.import_faces``. Queries are planted matches: a stored vector plus noise
(cosine about 0.8 to it, like another photo of the person). recall@1: the store's best subject
equals exact search's (numpy over all vectors); planted@1: it is the planted subject.
One query = one ``Gallery.search`` of one face with limit 3, as a one-face recognize makes it.
PostgreSQL runs from the pgserver wheel (testkit/postgres.py) in this process's machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from shared.contract import RecognizerInfo
from shared.gallery import Gallery, NewFace, open_gallery
from shared.gallery.postgres import PostgresGallery
from testkit.photos import ALIGNED_CROP
from testkit.postgres import running_postgres

DIM = 512
RECOGNIZER = RecognizerInfo("arcface", "w600k_r50", "bench", "bench", DIM)
NOISE = 0.75  # cosine to the planted vector about 1 / sqrt(1 + NOISE**2) = 0.8
CHUNK = 50_000
SEED = 14


def unit_rows(rng: np.random.Generator, rows: int, dim: int = DIM) -> NDArray[np.float32]:
    vectors = rng.standard_normal((rows, dim), dtype=np.float32)
    normalised: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normalised


def crop_jpeg() -> bytes:
    image = cv2.imread(str(ALIGNED_CROP))
    assert image is not None
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def store(kind: str, folder: Path) -> Iterator[tuple[Gallery, str]]:
    """A fresh store and its URL ("" for SQLite in ``folder``)."""
    if kind == "sqlite":
        gallery = open_gallery("", folder)
        yield gallery, ""
        gallery.close()
        return
    with running_postgres() as url:
        postgres = PostgresGallery(url)
        yield postgres, url
        postgres.close()


def load(
    gallery: Gallery,
    size: int,
    rng: np.random.Generator,
    recognizer: RecognizerInfo = RECOGNIZER,
    collection: str = "scale",
) -> NDArray[np.float32]:
    crop = crop_jpeg()
    stored = np.concatenate(
        [unit_rows(rng, min(CHUNK, size - start), recognizer.dimension) for start in range(0, size, CHUNK)]
    )
    # One import: one transaction (SQLite: one executemany; PostgreSQL: one COPY).
    items = [
        (f"s{i}", NewFace(f"img{i}", (0.0, 0.0, 112.0, 112.0), 0.9, 1, vec, crop))
        for i, vec in enumerate(stored)
    ]
    gallery.import_faces(collection, recognizer, items)
    return stored


def measure(
    gallery: Gallery, probes: NDArray[np.float32], exact: NDArray[np.int64], planted: NDArray[np.int64]
) -> dict[str, float]:
    started = time.perf_counter()
    gallery.search("scale", probes[:1], 3)  # loads this process's copy (vectors; PostgreSQL: codes)
    first_ms = (time.perf_counter() - started) * 1000
    times, hits, planted_hits = [], 0, 0
    for probe, truth, plant in zip(probes, exact, planted, strict=True):
        started = time.perf_counter()
        [matches] = gallery.search("scale", probe[None, :], 3)
        times.append((time.perf_counter() - started) * 1000)
        hits += matches[0].subject == f"s{truth}"
        planted_hits += matches[0].subject == f"s{plant}"
    times.sort()
    return {
        "first_ms": first_ms,
        "p50_ms": statistics.median(times),
        "p99_ms": times[min(len(times) - 1, round(0.99 * len(times)))],
        "recall_at_1": hits / len(probes),
        "planted_at_1": planted_hits / len(probes),
        "rss_mib": rss_mib(),
    }


def compact_seconds(gallery: Gallery, size: int) -> float:
    """Delete 1 % of the subjects, then time the compaction that erases them from the files."""
    for i in range(0, size, 100):
        gallery.delete_subject("scale", f"s{i}")
    started = time.perf_counter()
    gallery.compact("scale")
    return time.perf_counter() - started


def run(kind: str, size: int, queries: int, compact: bool = False) -> dict[str, float]:
    """One store's load time, search latency and recall; with ``compact``, then the time of a
    compaction after deleting 1 % of the subjects."""
    rng = np.random.default_rng(SEED)
    with (
        tempfile.TemporaryDirectory(prefix="facerest-scale-") as folder,
        store(kind, Path(folder)) as (gallery, url),
    ):
        started = time.perf_counter()
        stored = load(gallery, size, rng)
        load_s = time.perf_counter() - started
        planted = rng.integers(0, size, queries)
        probes = stored[planted] + NOISE * unit_rows(rng, queries)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        exact = np.argmax(probes @ stored.T, axis=1)
        del stored
        files = sum(p.stat().st_size for p in Path(folder).iterdir() if p.is_file()) / 2**20
        # PostgreSQL: another handle, as another process would search (its cache starts cold).
        handle = PostgresGallery(url) if kind == "postgres" else gallery
        row = {"load_s": load_s, "files_mib": files, **measure(handle, probes, exact, planted)}
        if handle is not gallery:
            handle.close()
        if compact:
            row["compact_s"] = compact_seconds(gallery, size)
        return row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument(
        "--compact", action="store_true", help="then delete 1 %% of the subjects and time a compaction"
    )
    args = parser.parse_args()
    print(f"cpu cores: {os.cpu_count()}; one face per query, limit 3; {args.queries} queries")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print(
        "store         faces     load_s  first_ms  p50_ms  p99_ms  recall@1  planted@1  peak_rss_MiB", end=""
    )
    print("  files_MiB")
    for kind in args.stores.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            r = run(kind, size, args.queries, args.compact)
            print(
                f"{kind:9} {size:9,} {r['load_s']:7.1f} {r['first_ms']:9.1f} "
                f"{r['p50_ms']:7.2f} {r['p99_ms']:7.2f} {r['recall_at_1']:9.3f} "
                f"{r['planted_at_1']:10.3f} {r['rss_mib']:13.0f} {r['files_mib']:10.0f}",
                flush=True,
            )
            if "compact_s" in r:
                deleted = size // 100
                print(f"{kind:9} compaction after deleting {deleted:,} subjects: {r['compact_s']:.1f} s")


if __name__ == "__main__":
    main()
