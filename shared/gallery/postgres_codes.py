"""The PostgreSQL store's first stage in this process: each collection's codes (64 bytes per 512-d
face: 64 MB per million), loaded from its table and kept up to date as shared/gallery/cache.py says.
Rows from before the ``code`` column get theirs from their vector here, stored back."""

from __future__ import annotations

from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray

from shared.errors import CollectionNotFound
from shared.gallery.cache import CollectionCache, Version
from shared.gallery.codes import Codes, GrowingCodes, sign_bytes, words
from shared.gallery.pgvector import from_binary
from shared.gallery.postgres_schema import faces_table


class CodeCache:
    """The codes of the collections this store handle has searched; safe to share between threads."""

    def __init__(self) -> None:
        self._copies: CollectionCache[GrowingCodes] = CollectionCache()

    def current(self, db: psycopg.Connection[Any], collection: str) -> tuple[str, NDArray[np.int64], Codes]:
        """The collection's faces table, and its seqs and codes, brought up to date first."""
        row = db.execute(
            "SELECT id, changes, dimension, last_seq FROM gallery_collections WHERE name = %s", (collection,)
        ).fetchone()
        version = None if row is None else Version(row[0], row[1], row[3])
        dimension = 0 if row is None else row[2]
        table = "" if row is None else faces_table(row[0])

        def load(codes: GrowingCodes, after: int, upto: int) -> GrowingCodes:
            try:
                seqs, added = _load(db, table, dimension, after, upto)
            except psycopg.errors.UndefinedTable:  # the collection was deleted meanwhile
                raise CollectionNotFound(f"no collection {collection!r}") from None
            return codes.appended(seqs, added) if len(seqs) else codes

        found = self._copies.current(collection, version, lambda: GrowingCodes.empty(dimension), load)
        seqs, codes = found.snapshot()
        return table, seqs, codes


def _load(
    db: psycopg.Connection[Any], table: str, dimension: int, after: int, upto: int
) -> tuple[NDArray[np.int64], Codes]:
    """The faces with seqs in (``after``, ``upto``], in seq order: their seqs and codes. Rows
    from before the ``code`` column get theirs from their vector, stored back so that no
    process computes it again."""
    rows = (
        db.cursor(binary=True)
        .execute(f"SELECT seq, code FROM {table} WHERE seq > %s AND seq <= %s ORDER BY seq", (after, upto))
        .fetchall()
    )
    seqs = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    width = -(-dimension // 8)
    bits = np.zeros((len(rows), width), np.uint8)
    missing = [i for i, r in enumerate(rows) if r[1] is None]
    present = [i for i, r in enumerate(rows) if r[1] is not None]
    if present:
        data = b"".join(rows[i][1] for i in present)
        bits[present] = np.frombuffer(data, np.uint8).reshape(len(present), width)
    if missing:
        bits[missing] = _backfill(db, table, seqs[missing], width)
    return seqs, words(bits)


def _backfill(
    db: psycopg.Connection[Any], table: str, seqs: NDArray[np.int64], width: int
) -> NDArray[np.uint8]:
    """The codes of these faces (in this order), computed from their vectors and stored."""
    rows = (
        db.cursor(binary=True)
        .execute(f"SELECT seq, vec FROM {table} WHERE seq = ANY(%s)", (seqs.tolist(),))
        .fetchall()
    )
    by_seq = dict(zip((r[0] for r in rows), sign_bytes(from_binary([r[1] for r in rows])), strict=True))
    with db.transaction():
        # Not a change to any face: no ``changes`` bump. A face deleted since the SELECT has no
        # code here; its zeros only make it a poor candidate, and the fetch skips it anyway.
        db.execute(
            f"UPDATE {table} t SET code = c.code FROM unnest(%s::bigint[], %s::bytea[]) AS c(seq, code) "
            "WHERE t.seq = c.seq AND t.code IS NULL",
            ([int(k) for k in by_seq], [v.tobytes() for v in by_seq.values()]),
        )
    blank = np.zeros(width, np.uint8)
    return np.stack([by_seq.get(int(seq), blank) for seq in seqs])
