"""People discovery's store: a collection's photos and every face found in them (vector, crop,
box, quality, photo id), their clusters, and the decisions a person made (docs/people.md).

One implementation for both databases: the SQL is shared and written with ``?`` parameters, and
a ``Dialect`` holds what differs (the tables' types, the parameter style, how a collection is
locked). Its tables (``people_*``) sit next to the gallery's in the same database, so SQLite's
file and PostgreSQL's database keep one collection's recognition and discovery data together.

Writers of a collection's clustering take the collection's lock first (``writing``): SQLite's
``BEGIN IMMEDIATE``, PostgreSQL's transaction-scoped advisory lock. Each such transaction bumps
the collection's ``version``, so a worker whose in-memory clustering has that version may use it
as it is (worker/people.py), and any other reloads.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from shared.errors import CollectionNotFound, FaceNotFound, InvalidRequest
from shared.gallery import Vectors
from shared.gallery.connections import PerThread

NO_CLUSTER = -1

SCHEMA = """
CREATE TABLE IF NOT EXISTS people_collections (
    name TEXT PRIMARY KEY,
    dimension INTEGER NOT NULL,
    version BIGINT NOT NULL DEFAULT 0,  -- bumped by every write, in-memory clusterings reload
    next_cluster BIGINT NOT NULL DEFAULT 1,
    created DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS people_photos (
    collection TEXT NOT NULL REFERENCES people_collections(name) ON DELETE CASCADE,
    photo_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    faces INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (collection, photo_id)
);
CREATE TABLE IF NOT EXISTS people_faces (
    seq {serial},
    id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL REFERENCES people_collections(name) ON DELETE CASCADE,
    photo_id TEXT NOT NULL,
    bbox TEXT NOT NULL,
    quality DOUBLE PRECISION NOT NULL,
    vec {blob} NOT NULL,
    crop {blob} NOT NULL,
    cluster BIGINT NOT NULL DEFAULT -1,
    placed INTEGER NOT NULL DEFAULT 0,  -- 1: a person put it where it is, clustering leaves it
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS people_photos_by_content ON people_photos (collection, sha256);
CREATE INDEX IF NOT EXISTS people_faces_by_collection ON people_faces (collection, seq);
CREATE INDEX IF NOT EXISTS people_faces_by_cluster ON people_faces (collection, cluster);
CREATE TABLE IF NOT EXISTS people_clusters (
    collection TEXT NOT NULL REFERENCES people_collections(name) ON DELETE CASCADE,
    id BIGINT NOT NULL,
    subject TEXT,
    ignored INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (collection, id)
);
CREATE TABLE IF NOT EXISTS people_decisions (
    seq {serial},
    collection TEXT NOT NULL REFERENCES people_collections(name) ON DELETE CASCADE,
    kind TEXT NOT NULL,  -- moved_out (face, cluster), apart (cluster, other), and the log's others
    face TEXT,
    cluster BIGINT,
    other BIGINT,
    detail TEXT,
    created DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS people_decisions_by_collection ON people_decisions (collection, kind);
CREATE TABLE IF NOT EXISTS people_enrolled (
    -- A discovered face a person made a subject's, and its copy in the gallery (its face id there):
    -- taking the face out of the subject deletes that copy.
    collection TEXT NOT NULL REFERENCES people_collections(name) ON DELETE CASCADE,
    face TEXT NOT NULL,
    subject TEXT NOT NULL,
    gallery_face TEXT NOT NULL,
    PRIMARY KEY (collection, face)
);
"""


# Every table of the store, each collection's rows before the collection's own (its last).
PEOPLE_TABLES = (
    "people_enrolled",
    "people_decisions",
    "people_clusters",
    "people_faces",
    "people_photos",
    "people_collections",
)


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dialect:
    name: str
    serial: str
    blob: str
    connect: Callable[[], Connection]
    transaction: Callable[[Connection, str], Any]  # a context manager: the collection's lock held
    # Rewrite the people tables' files without their deleted rows (PeopleStore.compact); whether
    # the database's log was flushed too.
    compact: Callable[[Connection], bool]

    def sql(self, text: str) -> str:
        return text if self.name == "sqlite" else text.replace("?", "%s")


@dataclass(frozen=True, slots=True)
class NewPeopleFace:
    bbox: tuple[float, float, float, float]
    quality: float
    vec: Vectors  # one row, L2-normalised
    crop: bytes  # the aligned crop, JPEG


@dataclass(frozen=True, slots=True)
class StoredPhoto:
    photo_id: str
    face_ids: list[str]
    new: bool  # False: this photo id was ingested before (its faces as stored)


@dataclass(frozen=True, slots=True)
class FaceRows:
    """A collection's faces from ``after`` on, in seq order, as clustering needs them."""

    seqs: list[int]
    ids: list[str]
    photos: list[str]
    vectors: Vectors
    quality: list[float]
    clusters: list[int]
    placed: list[bool]


@dataclass(frozen=True, slots=True)
class ClusterFace:
    face_id: str
    photo_id: str
    bbox: tuple[float, float, float, float]
    quality: float


@dataclass(frozen=True, slots=True)
class Cluster:
    id: int
    faces: list[ClusterFace]  # best quality first; the first is the cover
    subject: str | None
    ignored: bool


@dataclass(frozen=True, slots=True)
class EnrollableFace:
    """A discovered face as the gallery enrolls it (shared/gallery/people_subjects.py)."""

    face_id: str
    sha256: str  # its photo's
    faces_in_photo: int
    bbox: tuple[float, float, float, float]
    vec: Vectors
    crop: bytes


@dataclass(frozen=True, slots=True)
class SubjectState:
    wanted: str | None  # the subject of the face's cluster
    enrolled: tuple[str, str] | None  # (subject, gallery face id) of its copy in the gallery


@dataclass(frozen=True, slots=True)
class Listing:
    clusters: list[Cluster]
    unclustered: int


def _bbox(text: str) -> tuple[float, float, float, float]:
    a, b, c, d = orjson.loads(text)
    return (a, b, c, d)


class PeopleStore:
    """A collection's discovery data; every method is one transaction."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._connections: PerThread[Connection] = PerThread(dialect.connect)
        with self._plain() as db:
            for statement in SCHEMA.format(serial=dialect.serial, blob=dialect.blob).split(";"):
                if statement.strip():
                    db.execute(statement)

    def close(self) -> None:
        self._connections.close()

    def _q(self, db: Connection, sql: str, params: Sequence[Any] = ()) -> Any:
        return db.execute(self.dialect.sql(sql), tuple(params))

    @contextmanager
    def _plain(self) -> Iterator[Connection]:
        db = self._connections.get()
        with self.dialect.transaction(db, ""):
            yield db

    @contextmanager
    def writing(self, collection: str, dimension: int) -> Iterator[Writer]:
        """The collection's lock for one transaction (created on first use); bumps its version."""
        db = self._connections.get()
        with self.dialect.transaction(db, collection):
            row = self._q(
                db, "SELECT dimension FROM people_collections WHERE name = ?", (collection,)
            ).fetchone()
            if row is None:
                self._q(
                    db,
                    "INSERT INTO people_collections (name, dimension, created) VALUES (?, ?, ?)",
                    (collection, dimension, time.time()),
                )
            elif row[0] != dimension:
                raise InvalidRequest(f"collection {collection!r} holds {row[0]}-d vectors, not {dimension}-d")
            self._q(db, "UPDATE people_collections SET version = version + 1 WHERE name = ?", (collection,))
            yield Writer(self, db, collection)

    @contextmanager
    def deciding(self, collection: str) -> Iterator[Writer]:
        """``writing`` for a collection that must exist (a person's decision)."""
        db = self._connections.get()
        with self.dialect.transaction(db, collection):
            row = self._q(
                db, "SELECT dimension FROM people_collections WHERE name = ?", (collection,)
            ).fetchone()
            if row is None:
                raise CollectionNotFound(f"no photos were ingested into collection {collection!r}")
            self._q(db, "UPDATE people_collections SET version = version + 1 WHERE name = ?", (collection,))
            yield Writer(self, db, collection)

    def version(self, collection: str) -> int:
        with self._plain() as db:
            row = self._q(
                db, "SELECT version FROM people_collections WHERE name = ?", (collection,)
            ).fetchone()
            return -1 if row is None else int(row[0])

    def known_photos(self, collection: str, sha256: Sequence[str]) -> dict[str, str]:
        """Of these content digests, those ingested before: digest -> photo id."""
        if not sha256:
            return {}
        with self._plain() as db:
            marks = ", ".join("?" for _ in sha256)
            rows = self._q(
                db,
                f"SELECT sha256, photo_id FROM people_photos WHERE collection = ? AND sha256 IN ({marks})",
                (collection, *sha256),
            ).fetchall()
            return {row[0]: row[1] for row in rows}

    def subjects(self, collection: str) -> dict[int, str]:
        """Cluster id -> the name a person gave it."""
        with self._plain() as db:
            rows = self._q(
                db,
                "SELECT id, subject FROM people_clusters WHERE collection = ? AND subject IS NOT NULL",
                (collection,),
            ).fetchall()
            return {int(r[0]): r[1] for r in rows}

    def listing(self, collection: str) -> Listing:
        with self._plain() as db:
            if (
                self._q(db, "SELECT 1 FROM people_collections WHERE name = ?", (collection,)).fetchone()
                is None
            ):
                raise CollectionNotFound(f"no photos were ingested into collection {collection!r}")
            meta = {
                int(row[0]): (row[1], bool(row[2]))
                for row in self._q(
                    db, "SELECT id, subject, ignored FROM people_clusters WHERE collection = ?", (collection,)
                ).fetchall()
            }
            rows = self._q(
                db,
                "SELECT cluster, id, photo_id, bbox, quality FROM people_faces WHERE collection = ? "
                "ORDER BY cluster, quality DESC, seq",
                (collection,),
            ).fetchall()
        clusters: dict[int, list[ClusterFace]] = {}
        unclustered = 0
        for cluster, face_id, photo_id, bbox, quality in rows:
            if cluster == NO_CLUSTER:
                unclustered += 1
                continue
            clusters.setdefault(int(cluster), []).append(ClusterFace(face_id, photo_id, _bbox(bbox), quality))
        found = [
            Cluster(label, faces, *meta.get(label, (None, False)))
            for label, faces in sorted(clusters.items(), key=lambda item: (-len(item[1]), item[0]))
        ]
        return Listing(found, unclustered)

    def crop(self, collection: str, face_id: str) -> bytes | None:
        with self._plain() as db:
            row = self._q(
                db, "SELECT crop FROM people_faces WHERE collection = ? AND id = ?", (collection, face_id)
            ).fetchone()
            return None if row is None else bytes(row[0])

    def face_ids(self, collection: str, cluster: int | None = None, photo_of: str | None = None) -> list[str]:
        """The faces of a cluster, or of the photo of face ``photo_of``."""
        sql = "SELECT id FROM people_faces WHERE collection = ? AND "
        with self._plain() as db:
            if cluster is not None:
                rows = self._q(db, sql + "cluster = ?", (collection, cluster)).fetchall()
            else:
                rows = self._q(
                    db,
                    sql + "photo_id = (SELECT photo_id FROM people_faces WHERE collection = ? AND id = ?)",
                    (collection, collection, photo_of),
                ).fetchall()
            return [r[0] for r in rows]

    def subject_state(self, collection: str, face_ids: Sequence[str]) -> dict[str, SubjectState]:
        """Per face: the subject of its cluster, and the gallery copy it has."""
        if not face_ids:
            return {}
        with self._plain() as db:
            rows = self._q(
                db,
                "SELECT f.id, c.subject, e.subject, e.gallery_face FROM people_faces f "
                "LEFT JOIN people_clusters c ON c.collection = f.collection AND c.id = f.cluster "
                "LEFT JOIN people_enrolled e ON e.collection = f.collection AND e.face = f.id "
                f"WHERE f.collection = ? AND f.id IN ({', '.join('?' for _ in face_ids)})",
                (collection, *face_ids),
            ).fetchall()
        return {r[0]: SubjectState(r[1], None if r[3] is None else (r[2], r[3])) for r in rows}

    def enrollable(self, collection: str, face_ids: Sequence[str]) -> list[EnrollableFace]:
        """These faces, as the gallery enrolls them."""
        if not face_ids:
            return []
        with self._plain() as db:
            rows = self._q(
                db,
                "SELECT f.id, p.sha256, p.faces, f.bbox, f.vec, f.crop FROM people_faces f "
                "JOIN people_photos p ON p.collection = f.collection AND p.photo_id = f.photo_id "
                f"WHERE f.collection = ? AND f.id IN ({', '.join('?' for _ in face_ids)}) ORDER BY f.seq",
                (collection, *face_ids),
            ).fetchall()
        return [
            EnrollableFace(
                r[0], r[1], int(r[2]), _bbox(r[3]), np.frombuffer(bytes(r[4]), np.float32), bytes(r[5])
            )
            for r in rows
        ]

    def link(self, collection: str, subject: str, links: Sequence[tuple[str, str]]) -> None:
        """(discovered face id, gallery face id) pairs: that face is enrolled as ``subject``."""
        with self._plain() as db:
            for face, gallery_face in links:
                self._q(
                    db,
                    "INSERT INTO people_enrolled (collection, face, subject, gallery_face) "
                    "VALUES (?, ?, ?, ?)",
                    (collection, face, subject, gallery_face),
                )

    def unlink(self, collection: str, face_id: str) -> None:
        with self._plain() as db:
            self._q(
                db, "DELETE FROM people_enrolled WHERE collection = ? AND face = ?", (collection, face_id)
            )

    def linked_to(self, collection: str, gallery_face: str) -> str | None:
        """The discovered face whose gallery copy is ``gallery_face``, if any."""
        with self._plain() as db:
            row = self._q(
                db,
                "SELECT face FROM people_enrolled WHERE collection = ? AND gallery_face = ?",
                (collection, gallery_face),
            ).fetchone()
            return None if row is None else str(row[0])

    def subject_renamed(self, collection: str, old: str, new: str) -> None:
        """The gallery renamed a subject: its cluster and links carry the new name."""
        with self._plain() as db:
            for table in ("people_clusters", "people_enrolled"):
                self._q(
                    db,
                    f"UPDATE {table} SET subject = ? WHERE collection = ? AND subject = ?",
                    (new, collection, old),
                )

    def subject_deleted(self, collection: str, subject: str | None) -> None:
        """The gallery deleted a subject (None: every subject of the collection): its cluster
        stays (a person's grouping) without the name, and its faces' links to the deleted
        gallery faces go."""
        params = (collection,) if subject is None else (collection, subject)
        which = "" if subject is None else " AND subject = ?"
        with self._plain() as db:
            self._q(db, f"UPDATE people_clusters SET subject = NULL WHERE collection = ?{which}", params)
            self._q(db, f"DELETE FROM people_enrolled WHERE collection = ?{which}", params)
            # The log keeps that a cluster was named, not the name of a subject that was erased.
            named = "" if subject is None else " AND detail = ?"
            self._q(
                db,
                f"UPDATE people_decisions SET detail = '' WHERE collection = ? AND kind = 'name'{named}",
                params,
            )

    def compact(self) -> bool:
        """Leave no deleted row in the people tables' files (a deleted collection's photos, faces
        and crops; a deleted subject's name): the tables are shared by every collection, so one
        compaction reaches them all. True when the database's log went too (docs/people.md)."""
        return self.dialect.compact(self._connections.get())

    def delete_collection(self, collection: str) -> bool:
        with self._plain() as db:
            for table in PEOPLE_TABLES[:-1]:
                self._q(db, f"DELETE FROM {table} WHERE collection = ?", (collection,))
            cursor = self._q(db, "DELETE FROM people_collections WHERE name = ?", (collection,))
            return bool(cursor.rowcount)


class Writer:
    """One locked transaction on one collection."""

    def __init__(self, store: PeopleStore, db: Connection, collection: str) -> None:
        self._store, self._db, self.collection = store, db, collection

    def _q(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._store._q(self._db, sql, params)

    def version(self) -> int:
        return int(
            self._q("SELECT version FROM people_collections WHERE name = ?", (self.collection,)).fetchone()[0]
        )

    def next_cluster(self) -> int:
        row = self._q(
            "SELECT next_cluster FROM people_collections WHERE name = ?", (self.collection,)
        ).fetchone()
        return int(row[0])

    def set_next_cluster(self, value: int) -> None:
        self._q("UPDATE people_collections SET next_cluster = ? WHERE name = ?", (value, self.collection))

    def faces(self, after: int = 0) -> FaceRows:
        rows = self._q(
            "SELECT seq, id, photo_id, vec, quality, cluster, placed FROM people_faces "
            "WHERE collection = ? AND seq > ? ORDER BY seq",
            (self.collection, after),
        ).fetchall()
        vectors = (
            np.stack([np.frombuffer(bytes(row[3]), np.float32) for row in rows])
            if rows
            else np.zeros((0, 0), np.float32)
        )
        return FaceRows(
            [int(r[0]) for r in rows],
            [r[1] for r in rows],
            [r[2] for r in rows],
            vectors,
            [float(r[4]) for r in rows],
            [int(r[5]) for r in rows],
            [bool(r[6]) for r in rows],
        )

    def photo(self, photo_id: str, sha256: str) -> StoredPhoto | None:
        """The photo stored under this id, or with these bytes under another id (idempotent ingest)."""
        row = self._q(
            "SELECT photo_id FROM people_photos WHERE collection = ? AND (photo_id = ? OR sha256 = ?) "
            "ORDER BY CASE WHEN photo_id = ? THEN 0 ELSE 1 END LIMIT 1",
            (self.collection, photo_id, sha256, photo_id),
        ).fetchone()
        if row is None:
            return None
        photo_id = row[0]
        ids = self._q(
            "SELECT id FROM people_faces WHERE collection = ? AND photo_id = ? ORDER BY seq",
            (self.collection, photo_id),
        ).fetchall()
        return StoredPhoto(photo_id, [r[0] for r in ids], new=False)

    def add_photo(
        self, photo_id: str, sha256: str, faces: Sequence[NewPeopleFace]
    ) -> tuple[StoredPhoto, list[int]]:
        """Store a photo and its faces (unclustered); the stored photo and its faces' seqs."""
        now = time.time()
        self._q(
            "INSERT INTO people_photos (collection, photo_id, sha256, faces, created) VALUES (?, ?, ?, ?, ?)",
            (self.collection, photo_id, sha256, len(faces), now),
        )
        ids, seqs = [], []
        for face in faces:
            face_id = uuid.uuid4().hex
            self._q(
                "INSERT INTO people_faces (id, collection, photo_id, bbox, quality, vec, crop, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    face_id,
                    self.collection,
                    photo_id,
                    orjson.dumps(list(face.bbox)).decode(),
                    face.quality,
                    np.ascontiguousarray(face.vec, np.float32).tobytes(),
                    face.crop,
                    now,
                ),
            )
            ids.append(face_id)
            seqs.append(int(self._q("SELECT seq FROM people_faces WHERE id = ?", (face_id,)).fetchone()[0]))
        return StoredPhoto(photo_id, ids, new=True), seqs

    def set_clusters(self, changes: dict[int, int]) -> None:
        """Face seq -> cluster (NO_CLUSTER: none)."""
        for seq, cluster in changes.items():
            self._q("UPDATE people_faces SET cluster = ? WHERE seq = ?", (cluster, seq))

    # -- decisions ----------------------------------------------------------------------------

    def face(self, face_id: str) -> tuple[int, int, str]:
        """A face's seq, cluster and photo id; FaceNotFound."""
        row = self._q(
            "SELECT seq, cluster, photo_id FROM people_faces WHERE collection = ? AND id = ?",
            (self.collection, face_id),
        ).fetchone()
        if row is None:
            raise FaceNotFound(f"no face {face_id!r} in collection {self.collection!r}")
        return int(row[0]), int(row[1]), row[2]

    def members(self, cluster: int) -> list[ClusterFace]:
        rows = self._q(
            "SELECT id, photo_id, bbox, quality FROM people_faces WHERE collection = ? AND cluster = ?",
            (self.collection, cluster),
        ).fetchall()
        return [ClusterFace(r[0], r[1], _bbox(r[2]), float(r[3])) for r in rows]

    def cluster_exists(self, cluster: int) -> bool:
        return (
            self._q(
                "SELECT 1 FROM people_faces WHERE collection = ? AND cluster = ? LIMIT 1",
                (self.collection, cluster),
            ).fetchone()
            is not None
        )

    def cluster_of_subject(self, subject: str) -> int | None:
        row = self._q(
            "SELECT id FROM people_clusters WHERE collection = ? AND subject = ?", (self.collection, subject)
        ).fetchone()
        return None if row is None else int(row[0])

    def set_meta(self, cluster: int, subject: str | None = None, ignored: bool | None = None) -> None:
        row = self._q(
            "SELECT subject, ignored FROM people_clusters WHERE collection = ? AND id = ?",
            (self.collection, cluster),
        ).fetchone()
        now_subject = subject if subject is not None else (None if row is None else row[0])
        now_ignored = ignored if ignored is not None else (False if row is None else bool(row[1]))
        self._q("DELETE FROM people_clusters WHERE collection = ? AND id = ?", (self.collection, cluster))
        self._q(
            "INSERT INTO people_clusters (collection, id, subject, ignored) VALUES (?, ?, ?, ?)",
            (self.collection, cluster, now_subject, int(now_ignored)),
        )

    def drop_meta(self, cluster: int) -> None:
        self._q("DELETE FROM people_clusters WHERE collection = ? AND id = ?", (self.collection, cluster))

    def fixed_clusters(self) -> set[int]:
        """Clusters a person named or ignored: a re-cluster keeps them."""
        rows = self._q("SELECT id FROM people_clusters WHERE collection = ?", (self.collection,)).fetchall()
        return {int(r[0]) for r in rows}

    def place(self, seq: int, cluster: int) -> None:
        self._q("UPDATE people_faces SET cluster = ?, placed = 1 WHERE seq = ?", (cluster, seq))

    def record(
        self,
        kind: str,
        face: str | None = None,
        cluster: int | None = None,
        other: int | None = None,
        detail: str = "",
    ) -> None:
        self._q(
            "INSERT INTO people_decisions (collection, kind, face, cluster, other, detail, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.collection, kind, face, cluster, other, detail, time.time()),
        )

    def constraints(self) -> tuple[list[tuple[str, int]], list[tuple[int, int]]]:
        """(face id, cluster) pairs a person moved apart, and cluster pairs kept apart."""
        moved = self._q(
            "SELECT face, cluster FROM people_decisions WHERE collection = ? AND kind = 'moved_out'",
            (self.collection,),
        ).fetchall()
        apart = self._q(
            "SELECT cluster, other FROM people_decisions WHERE collection = ? AND kind = 'apart'",
            (self.collection,),
        ).fetchall()
        return [(r[0], int(r[1])) for r in moved], [(int(r[0]), int(r[1])) for r in apart]

    def unlink_copy(self, gallery_face: str) -> str | None:
        """Drop the link to the gallery face ``gallery_face``; the discovered face it held, if any."""
        row = self._q(
            "SELECT face FROM people_enrolled WHERE collection = ? AND gallery_face = ?",
            (self.collection, gallery_face),
        ).fetchone()
        if row is None:
            return None
        self._q("DELETE FROM people_enrolled WHERE collection = ? AND face = ?", (self.collection, row[0]))
        return str(row[0])

    def rename_cluster_refs(self, old: int, new: int) -> None:
        """After a merge: decisions about ``old`` now speak of ``new``."""
        self._q(
            "UPDATE people_decisions SET cluster = ? "
            "WHERE collection = ? AND cluster = ? AND kind = 'moved_out'",
            (new, self.collection, old),
        )


# -- the person's decisions: SQL in one locked transaction each, no clustering in memory (the API
# runs them; the next ingest or re-cluster reloads, as the version moved) ----------------------------


def name_cluster(store: PeopleStore, collection: str, cluster: int, subject: str) -> int:
    """Name a cluster: a subject another cluster already has takes this one in. The cluster
    that holds the subject afterwards."""
    with store.deciding(collection) as writer:
        _check_cluster(writer, cluster)
        existing = writer.cluster_of_subject(subject)
        writer.record("name", cluster=cluster, detail=subject)
        if existing is not None and existing != cluster:
            _merge(writer, existing, cluster)
            return existing
        writer.set_meta(cluster, subject=subject)
        return cluster


def merge_clusters(store: PeopleStore, collection: str, keep: int, others: Sequence[int]) -> None:
    with store.deciding(collection) as writer:
        for other in [keep, *others]:
            _check_cluster(writer, other)
        for other in others:
            if other != keep:
                _merge(writer, keep, other)


def _merge(writer: Writer, keep: int, other: int) -> None:
    """``other``'s faces into ``keep``; of two faces of one photo, ``keep``'s stays and the other
    leaves (and may not come back)."""
    listing = {face.photo_id for face in writer.members(keep)}
    for face in writer.members(other):
        seq, _, photo = writer.face(face.face_id)
        if photo in listing:
            writer.place(seq, NO_CLUSTER)
            writer.record("moved_out", face=face.face_id, cluster=keep)
        else:
            writer.set_clusters({seq: keep})
    writer.rename_cluster_refs(other, keep)
    writer.drop_meta(other)
    writer.record("merge", cluster=keep, other=other)


def _check_cluster(writer: Writer, cluster: int) -> None:
    if not writer.cluster_exists(cluster):
        raise InvalidRequest(f"no cluster {cluster} in collection {writer.collection!r}")


def move_face(
    store: PeopleStore, collection: str, face_id: str, cluster: int | None, subject: str | None
) -> int:
    """Put a face in a cluster, or a subject's cluster, or (both None) out of any; the face is not
    pulled back where it was. A face of the same photo already there leaves. The face's cluster."""
    with store.deciding(collection) as writer:
        seq, old, photo = writer.face(face_id)
        target = NO_CLUSTER
        if subject is not None:
            named = writer.cluster_of_subject(subject)
            if named is None:
                target = writer.next_cluster()
                writer.set_next_cluster(target + 1)
                writer.set_meta(target, subject=subject)
            else:
                target = named
        elif cluster is not None:
            _check_cluster(writer, cluster)
            target = cluster
        if old not in (NO_CLUSTER, target):
            writer.record("moved_out", face=face_id, cluster=old)
        if target != NO_CLUSTER:
            for other in writer.members(target):
                if other.photo_id == photo and other.face_id != face_id:
                    other_seq, _, _ = writer.face(other.face_id)
                    writer.place(other_seq, NO_CLUSTER)
                    writer.record("moved_out", face=other.face_id, cluster=target)
        writer.place(seq, target)
        writer.record("move", face=face_id, cluster=target, other=old)
        return target


def enrolled_copy_deleted(store: PeopleStore, collection: str, gallery_face: str) -> str | None:
    """A person deleted the gallery face ``gallery_face`` (DELETE /collections/{c}/faces/{id}): if
    it was a discovered face's copy, that face loses its link and is taken out of its subject, as
    by ``move_face(..., None, None)``: pinned out, never pulled back, never enrolled again by a
    later sync. The discovered face's id, or None when the gallery face was no copy."""
    if store.linked_to(collection, gallery_face) is None:  # most gallery faces: no lock taken
        return None
    with store.deciding(collection) as writer:
        face = writer.unlink_copy(gallery_face)
        if face is None:  # unlinked meanwhile
            return None
        seq, old, _ = writer.face(face)
        if old != NO_CLUSTER:
            writer.record("moved_out", face=face, cluster=old)
        writer.place(seq, NO_CLUSTER)
        writer.record("enrolled_copy_deleted", face=face, cluster=old, detail=gallery_face)
        return face


def ignore_cluster(store: PeopleStore, collection: str, cluster: int, ignored: bool = True) -> None:
    with store.deciding(collection) as writer:
        _check_cluster(writer, cluster)
        writer.set_meta(cluster, ignored=ignored)
        writer.record("ignore" if ignored else "unignore", cluster=cluster)


def keep_apart(store: PeopleStore, collection: str, a: int, b: int) -> None:
    with store.deciding(collection) as writer:
        _check_cluster(writer, a)
        _check_cluster(writer, b)
        writer.record("apart", cluster=a, other=b)


def _sqlite_connect(path: Path) -> Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA secure_delete=ON")  # as the gallery's: deleted vectors and crops are zeroed
    return db


@contextmanager
def _sqlite_transaction(db: Connection, collection: str) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")  # one writer per database file: the collection is locked too
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _sqlite_compact(db: Connection) -> bool:
    # secure_delete zeroed every deleted row in the database file as it went: only the WAL may
    # still hold the pages as they were, until this checkpoint empties it. (The gallery's
    # compaction VACUUMs the same file, which gives the free pages back.)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return True


def sqlite_dialect(path: Path) -> Dialect:
    path.parent.mkdir(parents=True, exist_ok=True)
    return Dialect(
        "sqlite",
        "INTEGER PRIMARY KEY AUTOINCREMENT",
        "BLOB",
        lambda: _sqlite_connect(path),
        _sqlite_transaction,
        _sqlite_compact,
    )


def postgres_dialect(url: str) -> Dialect:
    import psycopg  # only where PostgreSQL is configured

    @contextmanager
    def transaction(db: Connection, collection: str) -> Iterator[None]:
        assert isinstance(db, psycopg.Connection)
        with db.transaction():
            # Writers of one collection queue here; 0x70656f70 ("peop") keeps the lock space apart.
            db.execute("SELECT pg_advisory_xact_lock(1885695856, hashtext(%s))", (collection,))
            yield

    def compact(db: Connection) -> bool:
        assert isinstance(db, psycopg.Connection)
        from shared.gallery.postgres import flush_wal

        # A DELETE or UPDATE leaves the old row in the table's files (a dead tuple; a crop in the
        # TOAST table) and in the WAL: VACUUM FULL writes the live rows to new files (table, TOAST,
        # indexes) and truncates the old ones, as the gallery's compaction does for its table.
        # Each table is locked meanwhile: every collection's ingest and decisions wait.
        for table in PEOPLE_TABLES:
            db.execute(f"VACUUM (FULL, ANALYZE) {table}")
        return flush_wal(db)

    return Dialect(
        "postgres",
        "BIGSERIAL PRIMARY KEY",
        "BYTEA",
        lambda: psycopg.connect(url, autocommit=True),
        transaction,
        compact,
    )


def open_people(url: str, data_dir: Path) -> PeopleStore:
    """The discovery store in the gallery's database (FACEREST_GALLERY_URL; empty: SQLite under
    ``data_dir``)."""
    if url.startswith(("postgresql://", "postgres://")):
        return PeopleStore(postgres_dialect(url))
    path = Path(url.removeprefix("sqlite:///")) if url else data_dir / "gallery.sqlite3"
    return PeopleStore(sqlite_dialect(path))
