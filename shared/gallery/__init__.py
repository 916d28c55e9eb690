"""The gallery: collections of subjects and their enrolled faces (vector, aligned crop, box).

One interface (``Gallery``), two stores: SQLite (one file under the data directory, the
default; exact search in numpy over vectors cached per process and checked against the
database on every query) and PostgreSQL with pgvector (``FACEREST_GALLERY_URL=postgresql://``,
shared by every machine). Both search in the searching process, over a per-process cache checked
against the database before every query. PostgreSQL's caches only the vectors' sign bits, and the
database ranks the nearest few hundred faces by exact cosine, read by key: pgvector's HNSW index
found the best match of 21 % of queries at 1M faces, the two stages 100 % at p50 26.5 ms
(shared/gallery/postgres.py). Workers search and write it right after embedding, the API
reads and deletes (docs/recognition.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from shared.contract import RecognizerInfo
from shared.errors import RecognizerMismatch
from shared.recognition import Match

Vectors = NDArray[np.float32]  # rows of L2-normalised embeddings


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    name: str
    recognizer: RecognizerInfo  # the model that made its vectors: only it may search them
    created: float
    subjects: int
    faces: int


@dataclass(frozen=True, slots=True)
class NewFace:
    """A face to enroll: its vector, aligned crop (JPEG) and where it was in its image."""

    image_sha256: str
    bbox: tuple[float, float, float, float]
    prob: float
    faces_in_image: int
    vec: Vectors  # one row
    crop: bytes


@dataclass(frozen=True, slots=True)
class StoredFace:
    id: str
    subject: str
    bbox: tuple[float, float, float, float]
    prob: float
    faces_in_image: int
    created: float
    new: bool = True  # False: the same image was enrolled for this subject before (idempotent)


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    subject: str
    faces: int
    created: float


@dataclass(frozen=True, slots=True)
class Compaction:
    faces: int  # kept
    # The database's log was flushed too: no copy left in its WAL files either (PostgreSQL: needs
    # superuser or pg_checkpoint rights and wal_recycle=off; docs/recognition.md).
    log_flushed: bool


class Gallery(Protocol):
    def collection(self, name: str) -> CollectionInfo | None:
        """With its subject and face counts (a scan: for listings, not per request)."""
        ...

    def recognizer_of(self, name: str) -> RecognizerInfo | None:
        """The collection's recognizer, None if there is no such collection: one indexed row."""
        ...

    def collections(self) -> list[CollectionInfo]: ...

    def enroll(
        self, collection: str, recognizer: RecognizerInfo, subject: str, faces: Sequence[NewFace]
    ) -> list[StoredFace]:
        """Add faces in one transaction, committed (durable) on return; creates the collection,
        bound to ``recognizer``; a face whose image this subject already has is returned as stored.
        Raises RecognizerMismatch when the collection holds another recognizer's vectors."""
        ...

    def import_faces(
        self, collection: str, recognizer: RecognizerInfo, faces: Sequence[tuple[str, NewFace]]
    ) -> int:
        """Bulk load (subject, face) pairs in one transaction (migrations, benchmarks); a face whose
        image its subject already has is skipped. Returns the faces added."""
        ...

    def search(self, collection: str, queries: Vectors, limit: int) -> list[list[Match]]:
        """Per query row: the ``limit`` best subjects by their best face's similarity."""
        ...

    def subject_vectors(self, collection: str, subject: str) -> Vectors: ...

    def subjects(self, collection: str, offset: int, limit: int) -> list[SubjectInfo]: ...

    def faces(self, collection: str, subject: str) -> list[StoredFace]: ...

    def faces_page(self, collection: str, offset: int, limit: int) -> list[StoredFace]:
        """The collection's faces in enrollment order, paged (CompreFace's face listing)."""
        ...

    def face(self, collection: str, face_id: str) -> StoredFace | None:
        """One face by its id, with its subject: one indexed row."""
        ...

    def face_vector(self, collection: str, face_id: str) -> Vectors:
        """One face's vector as one row; no row for an unknown id (as ``subject_vectors``)."""
        ...

    def crop(self, collection: str, face_id: str) -> bytes | None: ...

    def crops(self, collection: str) -> list[tuple[str, bytes]]:
        """Every face's id and aligned crop, for reindexing."""
        ...

    def replace_vectors(
        self, collection: str, recognizer: RecognizerInfo, vectors: dict[str, Vectors]
    ) -> None:
        """Rebind the collection to ``recognizer`` with these vectors for its faces, in one transaction."""
        ...

    def rename_subject(self, collection: str, subject: str, new_name: str) -> int:
        """Give a subject's faces another name; how many. SubjectExists when ``new_name`` is taken."""
        ...

    def delete_subject(self, collection: str, subject: str) -> int: ...

    def delete_face(self, collection: str, face_id: str) -> bool: ...

    def delete_collection(self, collection: str) -> bool: ...

    def compact(self, collection: str) -> Compaction:
        """Rewrite the collection's storage so no copy of a deleted (or replaced) face, crop or
        name is left in the database's files; returns the faces kept. Long on big collections
        (PostgreSQL rewrites the collection's table) and it holds the collection's searches and
        writes meanwhile."""
        ...

    def close(self) -> None: ...


def same_recognizer(a: RecognizerInfo, b: RecognizerInfo) -> bool:
    """Vectors compare only within one model: key, weights name, version and dimension."""
    return (a.key, a.name, a.version, a.dimension) == (b.key, b.name, b.version, b.dimension)


def describe(recognizer: RecognizerInfo) -> str:
    return f"{recognizer.key} ({recognizer.name} {recognizer.version}, {recognizer.dimension}-d)"


def check_recognizer(collection: str, stored: RecognizerInfo, running: RecognizerInfo) -> None:
    """RecognizerMismatch unless the collection's vectors (``stored``) are ``running``'s: the one
    check and message, run by the API (against every online worker), by the worker (for a job
    queued before) and by the stores' enroll (in its transaction)."""
    if not same_recognizer(stored, running):
        raise RecognizerMismatch(
            f"collection {collection!r} holds vectors of {describe(stored)}, but the workers run "
            f"{describe(running)}: reindex the collection (POST /collections/{collection}/reindex) "
            "or run workers with its recognizer"
        )


def open_gallery(url: str, data_dir: Path) -> Gallery:
    """The store ``url`` names: postgresql://... or sqlite:///path; empty: data_dir/gallery.sqlite3."""
    if url.startswith(("postgresql://", "postgres://")):
        from shared.gallery.postgres import PostgresGallery  # psycopg only where it is configured

        return PostgresGallery(url)
    from shared.gallery.sqlite import SqliteGallery

    path = Path(url.removeprefix("sqlite:///")) if url else data_dir / "gallery.sqlite3"
    return SqliteGallery(path)
