"""The PostgreSQL store's second stage: ranking the candidates in the database or in the worker.

    python -m bench.postgres_rank --faces 100000 --candidates 64,256

Loads N faces as ``bench.gallery_scale`` does, takes each planted query's nearest codes (as the
store's first stage does), then times, in turns, three ways to rank those candidates exactly:

- ``in database``: ``SELECT subject, -(vec <#> query)`` by primary key, the query vector sent in
  pgvector's binary format (what shared/gallery/postgres.py does, with shared/gallery/pgvector.py);
- ``in database, text query``: the same with the query vector as a text literal;
- ``fetched``: ``SELECT subject, vec`` by primary key (binary cursor), ranked in numpy (what
  the store did before 2026-12-01).

Medians in ms per query. PostgreSQL runs from the pgserver wheel (testkit/postgres.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from bench.gallery_scale import NOISE, SEED, load, unit_rows
from bench.timing import alternating_ms
from shared.gallery.codes import hamming, sign_codes
from shared.gallery.pgvector import connect, from_binary, packed
from shared.gallery.postgres import PostgresGallery
from testkit.postgres import running_postgres


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faces", type=int, default=100_000)
    parser.add_argument("--candidates", default="64,256")
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(SEED)
    with running_postgres() as url:
        gallery = PostgresGallery(url)
        stored = load(gallery, args.faces, rng)
        gallery.close()
        db = connect(url)
        [(collection_id,)] = db.execute("SELECT id FROM gallery_collections").fetchall()
        table = f"gallery_faces_{collection_id}"
        seq_of = dict(db.execute(f"SELECT subject, seq FROM {table}").fetchall())
        seqs = np.array([seq_of[f"s{i}"] for i in range(args.faces)], np.int64)
        codes = sign_codes(stored)
        planted = rng.integers(0, args.faces, args.queries)
        probes = stored[planted] + NOISE * unit_rows(rng, args.queries)
        probes = (probes / np.linalg.norm(probes, axis=1, keepdims=True)).astype(np.float32)
        del stored
        print(
            f"cpu cores: {os.cpu_count()}; {args.faces:,} faces, {args.queries} queries; "
            f"load average {os.getloadavg()[0]:.1f}; medians of per-query medians, ms"
        )
        print("candidates  in_database  in_database_text_query  fetched")

        rank = f"SELECT subject, -(vec <#> %s::vector) FROM {table} WHERE seq = ANY(%s)"
        fetch = f"SELECT subject, vec FROM {table} WHERE seq = ANY(%s)"

        def ways(query: NDArray[np.float32], picked: list[int]) -> dict[str, Callable[[], object]]:
            def in_database() -> object:
                return sorted(db.execute(rank, (packed(query), picked)).fetchall(), key=lambda r: -r[1])

            def text() -> object:
                literal = "[" + ",".join(map(repr, query.tolist())) + "]"
                return sorted(db.execute(rank, (literal, picked)).fetchall(), key=lambda r: -r[1])

            def fetched() -> object:
                rows = db.cursor(binary=True).execute(fetch, (picked,)).fetchall()
                return np.argsort(-(from_binary([r[1] for r in rows]) @ query), kind="stable")

            return {"in_database": in_database, "text": text, "fetched": fetched}

        for count in (int(c) for c in args.candidates.split(",")):
            per_query: dict[str, list[float]] = {"in_database": [], "text": [], "fetched": []}
            for query in probes:
                picked = seqs[hamming(codes, sign_codes(query[None, :])[:, 0]).nearest(count)].tolist()
                for name, ms in alternating_ms(ways(query, picked), runs=5, warmup=1).items():
                    per_query[name].append(ms)
            medians = {name: statistics.median(values) for name, values in per_query.items()}
            print(
                f"{count:10} {medians['in_database']:12.2f} {medians['text']:23.2f} "
                f"{medians['fetched']:8.2f}",
                flush=True,
            )
        db.close()


if __name__ == "__main__":
    main()
