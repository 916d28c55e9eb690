"""The shared gallery: PostgreSQL with pgvector, for API replicas and workers on several machines.

Each collection has its own table (``gallery_faces_<id>``) with a ``vector(<dimension>)``
column and an HNSW index on inner product (the vectors are L2-normalised, so inner product is
the cosine): an HNSW index needs one fixed dimension, collections of different recognizers have
different ones, and a per-collection index keeps one collection's search from wading through
another's faces. Dropping a collection drops its table. Nothing is cached in any process: every
search asks the database, so a face committed by one machine is found by the next query anywhere.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import psycopg

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
from shared.recognition import Match, best_per_subject

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS gallery_collections (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    recognizer_key text NOT NULL,
    recognizer_name text NOT NULL,
    recognizer_version text NOT NULL,
    recognizer_license text NOT NULL,
    dimension integer NOT NULL,
    created double precision NOT NULL
);
"""
FACES_TABLE = """
CREATE TABLE IF NOT EXISTS {table} (
    seq bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    subject text NOT NULL,
    image_sha256 text NOT NULL,
    bbox text NOT NULL,
    prob real NOT NULL,
    faces_in_image integer NOT NULL,
    vec vector({dimension}) NOT NULL,
    crop bytea NOT NULL,
    created double precision NOT NULL,
    UNIQUE (subject, image_sha256)
);
"""
# ef_search (the gallery_ef_search setting): candidates the index walks per query; pgvector's
# default 40 loses recall from 20k faces on (docs/scaling.md). pgvector caps it at 1000.
EF_SEARCH_MAX = 1000
# An HNSW build that fits in memory is much faster than one that spills (1M x 512-d: ~2.5 GB).
INDEX_BUILD_MEMORY = "4GB"
FIELDS = "id, subject, image_sha256, bbox, prob, faces_in_image, vec, crop, created"
COLUMNS = "id, subject, bbox, prob, faces_in_image, created"


def _row(face_id: str, subject: str, face: NewFace, now: float) -> tuple[object, ...]:
    """A face's values in FIELDS order, for INSERT and COPY alike."""
    return (
        face_id,
        subject,
        face.image_sha256,
        orjson.dumps(face.bbox).decode(),
        face.prob,
        face.faces_in_image,
        vector_literal(face.vec),
        face.crop,
        now,
    )


def vector_literal(vec: Vectors) -> str:
    return "[" + ",".join(repr(float(x)) for x in vec.ravel()) + "]"


def _face(row: tuple[Any, ...], new: bool = True) -> StoredFace:
    bbox = orjson.loads(row[2])
    return StoredFace(row[0], row[1], (bbox[0], bbox[1], bbox[2], bbox[3]), row[3], row[4], row[5], new)


@dataclass(frozen=True, slots=True)
class Hnsw:
    """The HNSW index's build parameters: a collection keeps those it was built with until its
    index is built again (a bulk import, a reindex).

    Twice pgvector's defaults (m=16, ef_construction=64): on 100k random 512-d vectors, its
    hardest case, these find the best match of every query at ef_search 100 (recall@1 1.000, p50
    26 ms) where the defaults find 81 % (18 ms) and need ef_search 400 for 99 % (51 ms); the
    build takes about 3 times as long (docs/scaling.md)."""

    m: int = 32
    ef_construction: int = 128

    def create_index(self, table: str, if_not_exists: bool = False) -> str:
        maybe = "IF NOT EXISTS " if if_not_exists else ""
        return (
            f"CREATE INDEX {maybe}{table}_hnsw ON {table} USING hnsw (vec vector_ip_ops) "
            f"WITH (m = {self.m}, ef_construction = {self.ef_construction})"
        )


class PostgresGallery:
    def __init__(self, url: str, ef_search: int, hnsw: Hnsw = Hnsw()) -> None:
        self.url = url
        self.ef_search = ef_search
        self.hnsw = hnsw
        self._opened: list[psycopg.Connection[Any]] = []  # every thread's, for close()
        self._opened_lock = threading.Lock()
        self._local = threading.local()  # one connection per thread (psycopg's are not shareable)
        with self._transaction() as db:
            # Two processes creating the schema at once would race on the catalog.
            db.execute("SELECT pg_advisory_xact_lock(1414090830)")
            db.execute(SCHEMA)

    def _db(self) -> psycopg.Connection[Any]:
        db: psycopg.Connection[Any] | None = getattr(self._local, "db", None)
        if db is None or db.closed:
            db = psycopg.connect(self.url, autocommit=True)
            self._local.db = db
            with self._opened_lock:
                self._opened.append(db)
        return db

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        db = self._db()
        with db.transaction():
            yield db

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the store any more)."""
        with self._opened_lock:
            for db in self._opened:
                db.close()
            self._opened.clear()
        self._local = threading.local()

    def _row(self, db: psycopg.Connection[Any], name: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = db.execute(
            "SELECT id, name, recognizer_key, recognizer_name, recognizer_version, recognizer_license, "
            "dimension, created FROM gallery_collections WHERE name = %s",
            (name,),
        ).fetchone()
        return row

    def _table(self, db: psycopg.Connection[Any], name: str) -> str:
        row = self._row(db, name)
        if row is None:
            raise CollectionNotFound(f"no collection {name!r}")
        return f"gallery_faces_{row[0]}"

    @staticmethod
    def _recognizer(row: tuple[Any, ...]) -> RecognizerInfo:
        return RecognizerInfo(row[2], row[3], row[4], row[5], row[6])

    def _info(self, db: psycopg.Connection[Any], row: tuple[Any, ...]) -> CollectionInfo:
        counts = db.execute(
            f"SELECT count(*), count(DISTINCT subject) FROM gallery_faces_{row[0]}"
        ).fetchone()
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
            row = self._row(db, collection)
            assert row is not None  # inserted above or before
            check_recognizer(collection, self._recognizer(row), recognizer)
            table = f"gallery_faces_{row[0]}"
            if created is not None:
                # Only the enroll that made the collection makes its table, in the same
                # transaction: concurrent enrolls wait on the row above, then find both.
                db.execute(FACES_TABLE.format(table=table, dimension=row[6]))
                db.execute(self.hnsw.create_index(table, if_not_exists=True))
            for face in faces:
                face_id = uuid.uuid4().hex
                inserted = db.execute(
                    f"INSERT INTO {table} ({FIELDS}) VALUES (%s, %s, %s, %s, %s, %s, %s::vector, %s, %s) "
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
            table = self._table(db, collection)
            # Loading first and building the HNSW index after is several times faster than
            # inserting into the index row by row; the lock keeps searches out meanwhile.
            db.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
            db.execute(f"DROP INDEX IF EXISTS {table}_hnsw")
            db.execute(f"CREATE TEMP TABLE staging (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
            with db.cursor().copy(f"COPY staging ({FIELDS}) FROM STDIN") as copy:
                for subject, face in faces[1:]:
                    copy.write_row(_row(uuid.uuid4().hex, subject, face, now))
            added += db.execute(
                f"INSERT INTO {table} ({FIELDS}) SELECT {FIELDS} FROM staging "
                "ON CONFLICT (subject, image_sha256) DO NOTHING"
            ).rowcount
            db.execute(f"SET LOCAL maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
            db.execute(self.hnsw.create_index(table))
        return added

    def search(self, collection: str, queries: Vectors, limit: int) -> list[list[Match]]:
        results: list[list[Match]] = []
        with self._transaction() as db:
            table = self._table(db, collection)
            for query in queries:
                literal = vector_literal(query)
                want = max(limit * 4, 16)
                while True:
                    ef = min(EF_SEARCH_MAX, max(self.ef_search, want))
                    db.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                    rows = db.execute(
                        f"SELECT subject, -(vec <#> %s::vector) FROM {table} ORDER BY vec <#> %s::vector "
                        "LIMIT %s",
                        (literal, literal, want),
                    ).fetchall()
                    matches, enough = best_per_subject(((r[0], float(r[1])) for r in rows), limit)
                    if enough or len(rows) < want or ef >= EF_SEARCH_MAX:
                        break
                    want *= 4
                results.append(matches)
        return results

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

    def crop(self, collection: str, face_id: str) -> bytes | None:
        db = self._db()
        table = self._table(db, collection)
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
            row = self._row(db, collection)
            if row is None:
                raise CollectionNotFound(f"no collection {collection!r}")
            table = f"gallery_faces_{row[0]}"
            # The column's dimension may change: rebuild the table's vector column and its index.
            db.execute(f"DROP INDEX IF EXISTS {table}_hnsw")
            db.execute(f"ALTER TABLE {table} ALTER COLUMN vec DROP NOT NULL")
            db.execute(f"ALTER TABLE {table} ALTER COLUMN vec TYPE vector({recognizer.dimension}) USING NULL")
            with db.cursor() as cur:
                cur.executemany(
                    f"UPDATE {table} SET vec = %s::vector WHERE id = %s",
                    [(vector_literal(vec), face_id) for face_id, vec in vectors.items()],
                )
            db.execute(f"DELETE FROM {table} WHERE vec IS NULL")
            db.execute(f"ALTER TABLE {table} ALTER COLUMN vec SET NOT NULL")
            db.execute(self.hnsw.create_index(table))
            db.execute(
                "UPDATE gallery_collections SET recognizer_key = %s, recognizer_name = %s, "
                "recognizer_version = %s, recognizer_license = %s, dimension = %s WHERE id = %s",
                (
                    recognizer.key,
                    recognizer.name,
                    recognizer.version,
                    recognizer.license,
                    recognizer.dimension,
                    row[0],
                ),
            )

    def rename_subject(self, collection: str, subject: str, new_name: str) -> int:
        with self._transaction() as db:
            table = self._table(db, collection)
            held = f"SELECT 1 FROM {table} WHERE subject = %s LIMIT 1"
            if db.execute(held, (subject,)).fetchone() is None:
                return 0
            if db.execute(held, (new_name,)).fetchone():
                raise SubjectExists(f"collection {collection!r} already has a subject {new_name!r}")
            return db.execute(
                f"UPDATE {table} SET subject = %s WHERE subject = %s", (new_name, subject)
            ).rowcount

    def delete_subject(self, collection: str, subject: str) -> int:
        with self._transaction() as db:
            table = self._table(db, collection)
            return db.execute(f"DELETE FROM {table} WHERE subject = %s", (subject,)).rowcount

    def delete_face(self, collection: str, face_id: str) -> bool:
        with self._transaction() as db:
            table = self._table(db, collection)
            return db.execute(f"DELETE FROM {table} WHERE id = %s", (face_id,)).rowcount > 0

    def delete_collection(self, collection: str) -> bool:
        with self._transaction() as db:
            row = self._row(db, collection)
            if row is None:
                return False
            db.execute(f"DROP TABLE IF EXISTS gallery_faces_{row[0]}")
            db.execute("DELETE FROM gallery_collections WHERE id = %s", (row[0],))
            return True

    def compact(self, collection: str) -> Compaction:
        # A DELETE (or a reindex's UPDATE) leaves the old row in the table's files as a dead
        # tuple, its crop in the TOAST table and its vector in the index, until vacuum reuses the
        # space, and in the WAL. VACUUM FULL writes the live rows to new files (table, TOAST, every
        # index: the HNSW graph is built again) and truncates the old ones.
        db = self._db()  # autocommit: VACUUM cannot run in a transaction
        table = self._table(db, collection)
        db.execute(f"SET maintenance_work_mem = '{INDEX_BUILD_MEMORY}'")
        try:
            db.execute(f"VACUUM (FULL, ANALYZE) {table}")
        finally:
            db.execute("RESET maintenance_work_mem")
        counted = db.execute(f"SELECT count(*) FROM {table}").fetchone()
        return Compaction(0 if counted is None else counted[0], self._flush_log(db))

    @staticmethod
    def _flush_log(db: psycopg.Connection[Any]) -> bool:
        """Close the WAL segment that holds the old rows and checkpoint: the server then removes
        the segments before it (with wal_recycle off; on, it renames them for reuse and overwrites
        them as new WAL comes). Needs superuser or pg_checkpoint rights: False without them."""
        try:
            db.execute("SELECT pg_switch_wal()")
            db.execute("CHECKPOINT")
        except psycopg.errors.InsufficientPrivilege:
            return False
        return True
