"""The embedded gallery: one SQLite file (WAL), exact search in numpy.

Durability: WAL with ``synchronous=FULL``, so a commit is on disk when ``enroll`` returns (and
the API answers 201 only after that): it survives kill -9 and power loss. Deletes run with
``secure_delete`` and a WAL checkpoint, so a deleted face's vector and crop are overwritten in
the file, not only unlinked.

Search: each process caches a collection's vectors as one float32 matrix, keyed by the
collection's (deletes, last_seq) counters, which every enroll and delete bump in the same
transaction. Every query reads those two numbers first (one indexed row): a new face loads only
the rows after last_seq, a delete reloads the collection (shared/gallery/cache.py). No process
answers from a stale copy.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

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
from shared.gallery.cache import CollectionCache, Version
from shared.gallery.connections import PerThread
from shared.recognition import Match, top_faces

SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    recognizer_key TEXT NOT NULL,
    recognizer_name TEXT NOT NULL,
    recognizer_version TEXT NOT NULL,
    recognizer_license TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    created REAL NOT NULL,
    deletes INTEGER NOT NULL DEFAULT 0,  -- bumped by every delete and reindex: caches reload
    last_seq INTEGER NOT NULL DEFAULT 0  -- the newest face's seq: caches load what follows
);
CREATE TABLE IF NOT EXISTS faces (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE,
    subject TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    bbox TEXT NOT NULL,
    prob REAL NOT NULL,
    faces_in_image INTEGER NOT NULL,
    vec BLOB NOT NULL,
    crop BLOB NOT NULL,
    created REAL NOT NULL,
    UNIQUE (collection, subject, image_sha256)
);
CREATE INDEX IF NOT EXISTS faces_by_collection ON faces (collection, seq);
"""
INSERT_FACE = (
    "INSERT INTO faces (id, collection, subject, image_sha256, bbox, prob, faces_in_image, vec, crop, "
    "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True, slots=True)
class _Vectors:
    """One collection's vectors in this process, and their faces' subjects (row for row). A load
    makes a new one: a float row is 2 KB (512-d), too much to keep spare capacity for."""

    subjects: list[str]
    matrix: Vectors


def _recognizer(row: sqlite3.Row) -> RecognizerInfo:
    return RecognizerInfo(
        row["recognizer_key"],
        row["recognizer_name"],
        row["recognizer_version"],
        row["recognizer_license"],
        row["dimension"],
    )


def _face(row: sqlite3.Row, new: bool = True) -> StoredFace:
    bbox = tuple(orjson.loads(row["bbox"]))
    return StoredFace(
        row["id"],
        row["subject"],
        (bbox[0], bbox[1], bbox[2], bbox[3]),
        row["prob"],
        row["faces_in_image"],
        row["created"],
        new,
    )


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False only lets close() close every thread's (connections.PerThread).
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: the WAL is fsynced at every commit, so a 201 survives a power cut too
    # (NORMAL would survive kill -9 but may lose the last commits on power loss).
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA secure_delete=ON")  # deleted vectors and crops are zeroed
    return db


class SqliteGallery:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._connections = PerThread(lambda: _connect(path))  # sqlite3's rule: one per thread
        self._cache: CollectionCache[_Vectors] = CollectionCache()
        self._db().executescript(SCHEMA)  # IF NOT EXISTS: every process may run it

    def _db(self) -> sqlite3.Connection:
        return self._connections.get()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # writers queue here, not on a later lock upgrade
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the store any more)."""
        self._connections.close()

    def collection(self, name: str) -> CollectionInfo | None:
        row = (
            self._db()
            .execute(
                "SELECT c.*, (SELECT count(*) FROM faces f WHERE f.collection = c.name) AS nfaces, "
                "(SELECT count(DISTINCT subject) FROM faces f WHERE f.collection = c.name) AS nsubjects "
                "FROM collections c WHERE name = ?",
                (name,),
            )
            .fetchone()
        )
        return None if row is None else self._info(row)

    def recognizer_of(self, name: str) -> RecognizerInfo | None:
        row = self._db().execute("SELECT * FROM collections WHERE name = ?", (name,)).fetchone()
        return None if row is None else _recognizer(row)

    def _info(self, row: sqlite3.Row) -> CollectionInfo:
        return CollectionInfo(row["name"], _recognizer(row), row["created"], row["nsubjects"], row["nfaces"])

    def collections(self) -> list[CollectionInfo]:
        rows = (
            self._db()
            .execute(
                "SELECT c.*, count(f.seq) AS nfaces, count(DISTINCT f.subject) AS nsubjects "
                "FROM collections c LEFT JOIN faces f ON f.collection = c.name "
                "GROUP BY c.name ORDER BY c.name"
            )
            .fetchall()
        )
        return [self._info(row) for row in rows]

    def _bind(self, db: sqlite3.Connection, collection: str, recognizer: RecognizerInfo, now: float) -> None:
        """Create the collection bound to ``recognizer``, or check it holds that model's vectors."""
        row = db.execute("SELECT * FROM collections WHERE name = ?", (collection,)).fetchone()
        if row is None:
            db.execute(
                "INSERT INTO collections (name, recognizer_key, recognizer_name, recognizer_version, "
                "recognizer_license, dimension, created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    collection,
                    recognizer.key,
                    recognizer.name,
                    recognizer.version,
                    recognizer.license,
                    recognizer.dimension,
                    now,
                ),
            )
        else:
            check_recognizer(collection, _recognizer(row), recognizer)

    @staticmethod
    def _row(collection: str, subject: str, face: NewFace, now: float) -> tuple[object, ...]:
        return (
            uuid.uuid4().hex,
            collection,
            subject,
            face.image_sha256,
            orjson.dumps(face.bbox),
            face.prob,
            face.faces_in_image,
            face.vec.astype(np.float32).tobytes(),
            face.crop,
            now,
        )

    def enroll(
        self, collection: str, recognizer: RecognizerInfo, subject: str, faces: Sequence[NewFace]
    ) -> list[StoredFace]:
        now = time.time()
        stored: list[StoredFace] = []
        with self._transaction() as db:
            self._bind(db, collection, recognizer, now)
            for face in faces:
                old = db.execute(
                    "SELECT * FROM faces WHERE collection = ? AND subject = ? AND image_sha256 = ?",
                    (collection, subject, face.image_sha256),
                ).fetchone()
                if old is not None:
                    stored.append(_face(old, new=False))
                    continue
                row = self._row(collection, subject, face, now)
                cursor = db.execute(INSERT_FACE, row)
                db.execute(
                    "UPDATE collections SET last_seq = ? WHERE name = ?", (cursor.lastrowid, collection)
                )
                stored.append(
                    StoredFace(str(row[0]), subject, face.bbox, face.prob, face.faces_in_image, now)
                )
        return stored

    def import_faces(
        self, collection: str, recognizer: RecognizerInfo, faces: Sequence[tuple[str, NewFace]]
    ) -> int:
        now = time.time()
        with self._transaction() as db:
            self._bind(db, collection, recognizer, now)
            before = db.total_changes
            db.executemany(
                INSERT_FACE.replace("INSERT", "INSERT OR IGNORE", 1),
                (self._row(collection, subject, face, now) for subject, face in faces),
            )
            added = db.total_changes - before
            db.execute(
                "UPDATE collections SET last_seq = (SELECT coalesce(max(seq), 0) FROM faces "
                "WHERE collection = ?) WHERE name = ?",
                (collection, collection),
            )
        return added

    def _vectors(self, collection: str) -> _Vectors:
        """This collection's vectors, brought up to date with the database first."""
        db = self._db()
        row = db.execute(
            "SELECT created, deletes, last_seq, dimension FROM collections WHERE name = ?", (collection,)
        ).fetchone()
        version = None if row is None else Version(row["created"], row["deletes"], row["last_seq"])
        dimension = 0 if row is None else row["dimension"]

        def load(cached: _Vectors, after: int, upto: int) -> _Vectors:
            rows = db.execute(
                "SELECT seq, subject, vec FROM faces WHERE collection = ? AND seq > ? AND seq <= ? "
                "ORDER BY seq",
                (collection, after, upto),
            ).fetchall()
            if not rows:
                return cached
            added = np.frombuffer(b"".join(r["vec"] for r in rows), np.float32).reshape(-1, dimension)
            matrix = np.concatenate([cached.matrix, added]) if len(cached.matrix) else added.copy()
            return _Vectors(cached.subjects + [r["subject"] for r in rows], matrix)

        return self._cache.current(
            collection, version, lambda: _Vectors([], np.zeros((0, dimension), np.float32)), load
        )

    def search(self, collection: str, queries: Vectors, limit: int) -> list[list[Match]]:
        cached = self._vectors(collection)
        if not len(cached.matrix):
            return [[] for _ in range(len(queries))]
        similarities = queries.astype(np.float32) @ cached.matrix.T
        return [top_faces(row, cached.subjects, limit) for row in similarities]

    def subject_vectors(self, collection: str, subject: str) -> Vectors:
        rows = (
            self._db()
            .execute(
                "SELECT f.vec, c.dimension FROM faces f JOIN collections c ON c.name = f.collection "
                "WHERE f.collection = ? AND f.subject = ?",
                (collection, subject),
            )
            .fetchall()
        )
        if not rows:
            return np.zeros((0, 0), np.float32)
        return np.frombuffer(b"".join(r["vec"] for r in rows), np.float32).reshape(len(rows), -1)

    def subjects(self, collection: str, offset: int, limit: int) -> list[SubjectInfo]:
        rows = (
            self._db()
            .execute(
                "SELECT subject, count(*) AS n, min(created) AS created FROM faces WHERE collection = ? "
                "GROUP BY subject ORDER BY subject LIMIT ? OFFSET ?",
                (collection, limit, offset),
            )
            .fetchall()
        )
        return [SubjectInfo(r["subject"], r["n"], r["created"]) for r in rows]

    def faces(self, collection: str, subject: str) -> list[StoredFace]:
        rows = (
            self._db()
            .execute(
                "SELECT * FROM faces WHERE collection = ? AND subject = ? ORDER BY seq", (collection, subject)
            )
            .fetchall()
        )
        return [_face(row) for row in rows]

    def faces_page(self, collection: str, offset: int, limit: int) -> list[StoredFace]:
        rows = (
            self._db()
            .execute(
                "SELECT * FROM faces WHERE collection = ? ORDER BY seq LIMIT ? OFFSET ?",
                (collection, limit, offset),
            )
            .fetchall()
        )
        return [_face(row) for row in rows]

    def face(self, collection: str, face_id: str) -> StoredFace | None:
        row = (
            self._db()
            .execute("SELECT * FROM faces WHERE collection = ? AND id = ?", (collection, face_id))
            .fetchone()
        )
        return None if row is None else _face(row)

    def face_vector(self, collection: str, face_id: str) -> Vectors:
        row = (
            self._db()
            .execute("SELECT vec FROM faces WHERE collection = ? AND id = ?", (collection, face_id))
            .fetchone()
        )
        if row is None:
            return np.zeros((0, 0), np.float32)
        return np.frombuffer(row["vec"], np.float32).reshape(1, -1)

    def crop(self, collection: str, face_id: str) -> bytes | None:
        row = (
            self._db()
            .execute("SELECT crop FROM faces WHERE collection = ? AND id = ?", (collection, face_id))
            .fetchone()
        )
        return None if row is None else bytes(row["crop"])

    def crops(self, collection: str) -> list[tuple[str, bytes]]:
        rows = (
            self._db()
            .execute("SELECT id, crop FROM faces WHERE collection = ? ORDER BY seq", (collection,))
            .fetchall()
        )
        return [(r["id"], bytes(r["crop"])) for r in rows]

    def replace_vectors(
        self, collection: str, recognizer: RecognizerInfo, vectors: dict[str, Vectors]
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE collections SET recognizer_key = ?, recognizer_name = ?, recognizer_version = ?, "
                "recognizer_license = ?, dimension = ?, deletes = deletes + 1 WHERE name = ?",
                (
                    recognizer.key,
                    recognizer.name,
                    recognizer.version,
                    recognizer.license,
                    recognizer.dimension,
                    collection,
                ),
            )
            db.executemany(
                "UPDATE faces SET vec = ? WHERE collection = ? AND id = ?",
                [(vec.astype(np.float32).tobytes(), collection, face_id) for face_id, vec in vectors.items()],
            )
            # A face whose crop gave no vector cannot stay: it would be compared across models.
            ids = list(vectors)
            db.execute(
                f"DELETE FROM faces WHERE collection = ? AND id NOT IN ({','.join('?' * len(ids))})",
                (collection, *ids),
            )

    @staticmethod
    def _invalidate(db: sqlite3.Connection, collection: str) -> None:
        """Make every process's cached matrix of the collection reload (names or rows changed)."""
        db.execute("UPDATE collections SET deletes = deletes + 1 WHERE name = ?", (collection,))

    def _delete(self, sql: str, args: tuple[str, ...], collection: str) -> int:
        with self._transaction() as db:
            count = db.execute(sql, args).rowcount
            if count:
                self._invalidate(db, collection)
        if count:
            # Copy the zeroed pages out of the WAL into the file and empty the WAL, so no old copy
            # of a deleted face stays on disk (best effort: readers may hold the WAL a moment).
            self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return count

    def rename_subject(self, collection: str, subject: str, new_name: str) -> int:
        with self._transaction() as db:
            held = "SELECT 1 FROM faces WHERE collection = ? AND subject = ? LIMIT 1"
            if db.execute(held, (collection, subject)).fetchone() is None:
                return 0
            if db.execute(held, (collection, new_name)).fetchone() is not None:
                raise SubjectExists(f"collection {collection!r} already has a subject {new_name!r}")
            count = db.execute(
                "UPDATE faces SET subject = ? WHERE collection = ? AND subject = ?",
                (new_name, collection, subject),
            ).rowcount
            if count:
                self._invalidate(db, collection)  # cached matrices hold the names
        return int(count)

    def delete_subject(self, collection: str, subject: str) -> int:
        return self._delete(
            "DELETE FROM faces WHERE collection = ? AND subject = ?", (collection, subject), collection
        )

    def delete_face(self, collection: str, face_id: str) -> bool:
        return bool(
            self._delete(
                "DELETE FROM faces WHERE collection = ? AND id = ?", (collection, face_id), collection
            )
        )

    def delete_collection(self, collection: str) -> bool:
        with self._transaction() as db:
            db.execute("DELETE FROM faces WHERE collection = ?", (collection,))
            count = db.execute("DELETE FROM collections WHERE name = ?", (collection,)).rowcount
        self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._cache.forget(collection)
        return bool(count)

    def compact(self, collection: str) -> Compaction:
        # Deletes already zero their pages (secure_delete) and empty the WAL: this only gives the
        # free pages back, so the file shrinks. VACUUM rewrites the whole file (every collection).
        if self.recognizer_of(collection) is None:
            raise CollectionNotFound(f"no collection {collection!r}")
        db = self._db()
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        info = self.collection(collection)
        return Compaction(0 if info is None else info.faces, True)
