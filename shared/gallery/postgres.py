"""The shared gallery: PostgreSQL with pgvector, for API replicas and workers on several machines.

This module searches and reads and writes collections; their tables and migrations are in
postgres_schema.py, pgvector's binary format in pgvector.py, each process's codes in
postgres_codes.py.

Search runs in two stages, the first in the searching process: each process caches a collection's
codes (the vectors' sign bits, shared/gallery/codes.py) and computes a query's Hamming distance to
all of them, on up to 4 threads; the database then ranks the nearest few hundred faces by exact
cosine (the vectors are L2-normalised: pgvector's inner product), read by key. pgvector's HNSW
index, which this store used before, found the best match of only 21 % of queries at 1M random
512-d faces (ef_search 100; 78 % at its cap of 1000, 200 ms); the two stages found 100 % at a p50
of 26.5 ms through this store (bench/gallery_scale.py, docs/scaling.md).

The cache is brought up to date before every query, as the SQLite store's is (cache.py). So a face
committed by one machine is found by the next query anywhere, and a deleted or renamed face is
never answered: only faces the exact stage fetched from the table, with their current subject,
are returned.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import orjson
import psycopg
from numpy.typing import NDArray

from shared.contract import RecognizerInfo
from shared.errors import CollectionNotFound, SubjectExists
from shared.gallery import (
    CollectionInfo,
    Compaction,
    NewFace,
    StoredFace,
    SubjectInfo,
    Vectors,
    check_recognizer,
)
from shared.gallery.codes import Distances, code_bytes, hamming, sign_codes
from shared.gallery.connections import PerThread
from shared.gallery.pgvector import connect, packed
from shared.gallery.postgres_codes import CodeCache
from shared.gallery.postgres_schema import (
    advance,
    create_faces_table,
    create_schema,
    faces_table,
    keep_vectors_inline,
)
from shared.recognition import Match, best_per_subject

# Faces re-ranked exactly per query: the nearest codes by Hamming distance. 256 of 1M random 512-d
# faces held the best match of every query at cosine 0.8 (recall@1 1.000, docs/scaling.md; 64 held
# 0.99); each costs one row fetched by key.
CANDIDATES = 256
FIELDS = "id, subject, image_sha256, bbox, prob, faces_in_image, vec, code, crop, created"
# A binary COPY needs each field's exact type; the vector travels as pgvector's binary format,
# which the server decodes by the column's type (bytea here only passes the bytes through).
FIELD_TYPES = ["text", "text", "text", "text", "float4", "int4", "bytea", "bytea", "bytea", "float8"]
COLUMNS = "id, subject, bbox, prob, faces_in_image, created"


def _storable(text: str) -> bool:
    """Whether PostgreSQL's text can hold ``text``: a NUL is refused with DataError, so an id
    holding one names no row (not found, as on SQLite) instead of failing the request."""
    return "\x00" not in text


def _row(face_id: str, subject: str, face: NewFace, now: float) -> tuple[object, ...]:
    """A face's values in FIELDS order, for INSERT and COPY alike."""
    return (
        face_id,
        subject,
        face.image_sha256,
        orjson.dumps(face.bbox).decode(),
        face.prob,
        face.faces_in_image,
        packed(face.vec),
        code_bytes(face.vec),
        face.crop,
        now,
    )


def _face(row: tuple[Any, ...], new: bool = True) -> StoredFace:
    bbox = orjson.loads(row[2])
    return StoredFace(row[0], row[1], (bbox[0], bbox[1], bbox[2], bbox[3]), row[3], row[4], row[5], new)


class PostgresGallery:
    def __init__(self, url: str, scan_threads: int | None = None) -> None:
        """``scan_threads``: how many threads share each query's code scan (default: the machine's
        CPUs, at most 4, as the worker's inference threads count them; numpy releases the GIL
        while it scans)."""
        self.url = url
        self._scan_threads = scan_threads or min(4, os.cpu_count() or 1)
        self._scan_pool = (
            ThreadPoolExecutor(self._scan_threads, thread_name_prefix="gallery-scan")
            if self._scan_threads > 1
            else None
        )
        # psycopg's connections are not shareable; a closed one (the server restarted) is replaced.
        self._connections = PerThread(lambda: connect(url), broken=lambda db: db.closed)
        self._codes = CodeCache()
        with self._transaction() as db:
            create_schema(db)

    def _db(self) -> psycopg.Connection[Any]:
        return self._connections.get()

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        db = self._db()
        with db.transaction():
            yield db

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the store any more)."""
        self._connections.close()
        if self._scan_pool is not None:
            self._scan_pool.shutdown()

    def _row(self, db: psycopg.Connection[Any], name: str, lock: bool = False) -> tuple[Any, ...] | None:
        """The collection's row; with ``lock``, locked until the transaction ends (``_locked``)."""
        row: tuple[Any, ...] | None = db.execute(
            "SELECT id, name, recognizer_key, recognizer_name, recognizer_version, recognizer_license, "
            "dimension, created FROM gallery_collections WHERE name = %s" + (" FOR UPDATE" if lock else ""),
            (name,),
        ).fetchone()
        return row

    def _table(self, db: psycopg.Connection[Any], name: str) -> str:
        row = self._row(db, name)
        if row is None:
            raise CollectionNotFound(f"no collection {name!r}")
        return faces_table(row[0])

    def _locked(self, db: psycopg.Connection[Any], name: str) -> tuple[int, str]:
        """Lock the collection's row for this transaction; its id and faces table.

        Every transaction that writes a collection's faces takes this lock first. For inserts it
        makes seq order commit order: PostgreSQL draws a seq at the INSERT, not at the commit, so
        without it a transaction that drew seq 7 could commit after one that drew seq 8, and a
        cache that had loaded "seq > 7" by then would never see 7. Under the lock, whoever inserts
        next draws only after every earlier insert into the collection has committed. For the
        others, one lock order (this row, then faces) keeps an enroll and a delete of the same
        subject from deadlocking (the enroll's insert waits on the delete's row, the delete's
        ``changes`` bump on the enroll's lock)."""
        row = self._row(db, name, lock=True)
        if row is None:
            raise CollectionNotFound(f"no collection {name!r}")
        return row[0], faces_table(row[0])

    @staticmethod
    def _changed(db: psycopg.Connection[Any], collection_id: int, rows: int) -> int:
        """Count a change to existing faces (every process's cache reloads at its next search)."""
        if rows:
            db.execute("UPDATE gallery_collections SET changes = changes + 1 WHERE id = %s", (collection_id,))
        return rows

    @staticmethod
    def _recognizer(row: tuple[Any, ...]) -> RecognizerInfo:
        return RecognizerInfo(row[2], row[3], row[4], row[5], row[6])

    def _info(self, db: psycopg.Connection[Any], row: tuple[Any, ...]) -> CollectionInfo:
        counts = db.execute(f"SELECT count(*), count(DISTINCT subject) FROM {faces_table(row[0])}").fetchone()
        faces, subjects = (0, 0) if counts is None else (counts[0], counts[1])
        return CollectionInfo(row[1], self._recognizer(row), row[7], subjects, faces)

    def collection(self, name: str) -> CollectionInfo | None:
        db = self._db()
        row = self._row(db, name)
        return None if row is None else self._info(db, row)

    def recognizer_of(self, name: str) -> RecognizerInfo | None:
        row = self._row(self._db(), name)
        return None if row is None else self._recognizer(row)

    def collections(self) -> list[CollectionInfo]:
        db = self._db()
        names = [r[0] for r in db.execute("SELECT name FROM gallery_collections ORDER BY name").fetchall()]
        found = (self._row(db, name) for name in names)
        return [self._info(db, row) for row in found if row is not None]

    def enroll(
        self, collection: str, recognizer: RecognizerInfo, subject: str, faces: Sequence[NewFace]
    ) -> list[StoredFace]:
        now = time.time()
        stored: list[StoredFace] = []
        with self._transaction() as db:
            created = db.execute(
                "INSERT INTO gallery_collections (name, recognizer_key, recognizer_name, recognizer_version, "
                "recognizer_license, dimension, created) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                (
                    collection,
                    recognizer.key,
                    recognizer.name,
                    recognizer.version,
                    recognizer.license,
                    recognizer.dimension,
                    now,
                ),
            ).fetchone()
            row = self._row(db, collection, lock=True)  # before any seq is drawn: _locked says why
            assert row is not None  # inserted above or before
            check_recognizer(collection, self._recognizer(row), recognizer)
            table = faces_table(row[0])
            if created is not None:
                # Only the enroll that made the collection makes its table, in the same
                # transaction: concurrent enrolls wait on the row above, then find both.
                create_faces_table(db, table, row[6])
            for face in faces:
                face_id = uuid.uuid4().hex
                inserted = db.execute(
                    f"INSERT INTO {table} ({FIELDS}) VALUES (%s, %s, %s, %s, %s, %s, %s::vector, %s, %s, %s) "
                    "ON CONFLICT (subject, image_sha256) DO NOTHING RETURNING id",
                    _row(face_id, subject, face, now),
                ).fetchone()
                if inserted is not None:
                    stored.append(
                        StoredFace(face_id, subject, face.bbox, face.prob, face.faces_in_image, now)
                    )
                    continue
                old = db.execute(
                    f"SELECT {COLUMNS} FROM {table} WHERE subject = %s AND image_sha256 = %s",
                    (subject, face.image_sha256),
                ).fetchone()
                assert old is not None  # the conflict above
                stored.append(_face(old, new=False))
            if any(face.new for face in stored):
                advance(db, row[0])
        return stored

    def import_faces(
        self, collection: str, recognizer: RecognizerInfo, faces: Sequence[tuple[str, NewFace]]
    ) -> int:
        if not faces:
            return 0
        # The first face makes (or checks) the collection and its table, as an enroll would.
        first_subject, first = faces[0]
        added = sum(f.new for f in self.enroll(collection, recognizer, first_subject, [first]))
        now = time.time()
        with self._transaction() as db:
            collection_id, table = self._locked(db, collection)
            db.execute(f"CREATE TEMP TABLE staging (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
            with db.cursor().copy(f"COPY staging ({FIELDS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(FIELD_TYPES)
                for subject, face in faces[1:]:
                    copy.write_row(_row(uuid.uuid4().hex, subject, face, now))
            added += db.execute(
                f"INSERT INTO {table} ({FIELDS}) SELECT {FIELDS} FROM staging "
                "ON CONFLICT (subject, image_sha256) DO NOTHING"
            ).rowcount
            advance(db, collection_id)
            # Statistics now, not when autovacuum gets to it: without them the planner guesses
            # a third of the rows for a seq range and may read the whole table.
            db.execute(f"ANALYZE {table}")
        return added

    def search(self, collection: str, queries: Vectors, limit: int) -> list[list[Match]]:
        table, seqs, codes = self._codes.current(self._db(), collection)
        if not len(seqs):
            return [[] for _ in range(len(queries))]
        queries = queries.astype(np.float32)
        query_codes = sign_codes(queries)
        return [
            self._rerank(
                table,
                query,
                seqs,
                hamming(codes, query_codes[:, i], self._scan_pool, self._scan_threads),
                limit,
            )
            for i, query in enumerate(queries)
        ]

    def _rerank(
        self, table: str, query: Vectors, seqs: NDArray[np.int64], distances: Distances, limit: int
    ) -> list[Match]:
        """The ``limit`` best subjects among the faces nearest by code, ranked by exact cosine.

        The database computes each candidate's dot product with the query (pgvector's ``<#>``,
        the negative inner product: the vectors are L2-normalised) and sends back only subjects
        and scores: fetching 256 vectors to rank them here took p50 8.0 ms at 100k faces, this 4.5
        (docs/scaling.md).
        Subjects come from the rows read, not from any cache: a face deleted since the cache was
        loaded is not found, a renamed one has its new name. Too few distinct subjects among the
        candidates (one person's many faces): widen and fetch again, as ``top_faces`` does."""
        count = max(CANDIDATES, limit * 16)
        vector = packed(query)
        while True:
            picked = seqs[distances.nearest(count)]
            rows = (
                self._db()
                .execute(
                    f"SELECT subject, -(vec <#> %s::vector) FROM {table} WHERE seq = ANY(%s)",
                    (vector, picked.tolist()),
                )
                .fetchall()
            )
            rows.sort(key=lambda row: -row[1])
            matches, enough = best_per_subject(((subject, float(score)) for subject, score in rows), limit)
            if enough or len(picked) >= len(seqs):
                return matches
            count *= 4

    def subject_vectors(self, collection: str, subject: str) -> Vectors:
        db = self._db()
        table = self._table(db, collection)
        rows = db.execute(f"SELECT vec::real[] FROM {table} WHERE subject = %s", (subject,)).fetchall()
        if not rows:
            return np.zeros((0, 0), np.float32)
        return np.array([r[0] for r in rows], np.float32)

    def subjects(self, collection: str, offset: int, limit: int) -> list[SubjectInfo]:
        db = self._db()
        table = self._table(db, collection)
        rows = db.execute(
            f"SELECT subject, count(*), min(created) FROM {table} GROUP BY subject ORDER BY subject "
            "LIMIT %s OFFSET %s",
            (limit, offset),
        ).fetchall()
        return [SubjectInfo(r[0], r[1], r[2]) for r in rows]

    def faces(self, collection: str, subject: str) -> list[StoredFace]:
        db = self._db()
        table = self._table(db, collection)
        rows = db.execute(
            f"SELECT {COLUMNS} FROM {table} WHERE subject = %s ORDER BY seq", (subject,)
        ).fetchall()
        return [_face(row) for row in rows]

    def faces_page(self, collection: str, offset: int, limit: int) -> list[StoredFace]:
        db = self._db()
        table = self._table(db, collection)
        rows = db.execute(
            f"SELECT {COLUMNS} FROM {table} ORDER BY seq LIMIT %s OFFSET %s", (limit, offset)
        ).fetchall()
        return [_face(row) for row in rows]

    def face(self, collection: str, face_id: str) -> StoredFace | None:
        db = self._db()
        table = self._table(db, collection)
        if not _storable(face_id):
            return None
        row = db.execute(f"SELECT {COLUMNS} FROM {table} WHERE id = %s", (face_id,)).fetchone()
        return None if row is None else _face(row)

    def face_vector(self, collection: str, face_id: str) -> Vectors:
        db = self._db()
        table = self._table(db, collection)
        row = None
        if _storable(face_id):
            row = db.execute(f"SELECT vec::real[] FROM {table} WHERE id = %s", (face_id,)).fetchone()
        if row is None:
            return np.zeros((0, 0), np.float32)
        return np.array([row[0]], np.float32)

    def crop(self, collection: str, face_id: str) -> bytes | None:
        db = self._db()
        table = self._table(db, collection)
        if not _storable(face_id):
            return None
        row = db.execute(f"SELECT crop FROM {table} WHERE id = %s", (face_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def crops(self, collection: str) -> list[tuple[str, bytes]]:
        db = self._db()
        table = self._table(db, collection)
        return [(r[0], bytes(r[1])) for r in db.execute(f"SELECT id, crop FROM {table} ORDER BY seq")]

    def replace_vectors(
        self, collection: str, recognizer: RecognizerInfo, vectors: dict[str, Vectors]
    ) -> None:
        with self._transaction() as db:
            collection_id, table = self._locked(db, collection)
            # The column's dimension may change: rebuild the table's vector column (a new type
            # brings the type's default storage back: keep the vectors inline again).
            db.execute(f"ALTER TABLE {table} ALTER COLUMN vec DROP NOT NULL")
            db.execute(f"ALTER TABLE {table} ALTER COLUMN vec TYPE vector({recognizer.dimension}) USING NULL")
            keep_vectors_inline(db, table)
            with db.cursor() as cur:
                cur.executemany(
                    f"UPDATE {table} SET vec = %s::vector, code = %s WHERE id = %s",
                    [(packed(vec), code_bytes(vec), face_id) for face_id, vec in vectors.items()],
                )
            db.execute(f"DELETE FROM {table} WHERE vec IS NULL")
            db.execute(f"ALTER TABLE {table} ALTER COLUMN vec SET NOT NULL")
            db.execute(
                "UPDATE gallery_collections SET recognizer_key = %s, recognizer_name = %s, "
                "recognizer_version = %s, recognizer_license = %s, dimension = %s, changes = changes + 1 "
                "WHERE id = %s",
                (
                    recognizer.key,
                    recognizer.name,
                    recognizer.version,
                    recognizer.license,
                    recognizer.dimension,
                    collection_id,
                ),
            )

    def rename_subject(self, collection: str, subject: str, new_name: str) -> int:
        with self._transaction() as db:
            collection_id, table = self._locked(db, collection)
            held = f"SELECT 1 FROM {table} WHERE subject = %s LIMIT 1"
            if db.execute(held, (subject,)).fetchone() is None:
                return 0
            if db.execute(held, (new_name,)).fetchone():
                raise SubjectExists(f"collection {collection!r} already has a subject {new_name!r}")
            renamed = db.execute(
                f"UPDATE {table} SET subject = %s WHERE subject = %s", (new_name, subject)
            ).rowcount
            return self._changed(db, collection_id, renamed)

    def delete_subject(self, collection: str, subject: str) -> int:
        with self._transaction() as db:
            collection_id, table = self._locked(db, collection)
            deleted = db.execute(f"DELETE FROM {table} WHERE subject = %s", (subject,)).rowcount
            return self._changed(db, collection_id, deleted)

    def delete_face(self, collection: str, face_id: str) -> bool:
        with self._transaction() as db:
            collection_id, table = self._locked(db, collection)
            if not _storable(face_id):
                return False
            deleted = db.execute(f"DELETE FROM {table} WHERE id = %s", (face_id,)).rowcount
            return self._changed(db, collection_id, deleted) > 0

    def delete_collection(self, collection: str) -> bool:
        with self._transaction() as db:
            row = self._row(db, collection, lock=True)
            if row is None:
                return False
            db.execute(f"DROP TABLE IF EXISTS {faces_table(row[0])}")
            db.execute("DELETE FROM gallery_collections WHERE id = %s", (row[0],))
            return True

    def compact(self, collection: str) -> Compaction:
        # A DELETE (or a reindex's UPDATE) leaves the old row in the table's files as a dead
        # tuple, its crop in the TOAST table, until vacuum reuses the space, and in the WAL.
        # VACUUM FULL writes the live rows to new files (table, TOAST, every index) and truncates
        # the old ones. It keeps every row's seq: caches need no reload (no ``changes`` bump).
        db = self._db()  # autocommit: VACUUM cannot run in a transaction
        table = self._table(db, collection)
        db.execute(f"VACUUM (FULL, ANALYZE) {table}")
        counted = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        return Compaction(0 if counted is None else counted[0], flush_wal(db))


def flush_wal(db: psycopg.Connection[Any]) -> bool:
    """Close the WAL segment that holds the old rows and checkpoint: the server then removes
    the segments before it (with wal_recycle off; on, it renames them for reuse and overwrites
    them as new WAL comes). Needs superuser or pg_checkpoint rights: False without them."""
    try:
        db.execute("SELECT pg_switch_wal()")
        db.execute("CHECKPOINT")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True
