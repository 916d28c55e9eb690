"""The PostgreSQL store's tables, and the migration of galleries made by older versions.

``gallery_collections`` holds one row per collection; each collection's faces have their own table
(``gallery_faces_<id>``), with a ``vector(<dimension>)`` column and a ``code`` column (the vector's
sign bits, shared/gallery/codes.py). Dropping a collection drops its table.
"""

from __future__ import annotations

from typing import Any

import psycopg

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
    created double precision NOT NULL,
    changes bigint NOT NULL DEFAULT 0,  -- bumped by every update or delete of faces: caches reload
    last_seq bigint NOT NULL DEFAULT 0  -- the newest face's seq: caches load what follows
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
    code bytea,  -- the sign bits of vec (shared/gallery/codes.py); NULL in rows from before it
    crop bytea NOT NULL,
    created double precision NOT NULL,
    UNIQUE (subject, image_sha256)
);
"""


def faces_table(collection_id: int) -> str:
    return f"gallery_faces_{collection_id}"


def create_schema(db: psycopg.Connection[Any]) -> None:
    """Create the tables, or bring older ones up to date; in the caller's transaction."""
    # Two processes creating the schema at once would race on the catalog.
    db.execute("SELECT pg_advisory_xact_lock(1414090830)")
    db.execute(SCHEMA)
    _migrate(db)


def create_faces_table(db: psycopg.Connection[Any], table: str, dimension: int) -> None:
    db.execute(FACES_TABLE.format(table=table, dimension=dimension))
    keep_vectors_inline(db, table)


def keep_vectors_inline(db: psycopg.Connection[Any], table: str) -> None:
    """Keep the vectors of rows written from now on in the row, not in the TOAST table.

    pgvector's default storage moves a 512-d vector out once the crop has gone there: fetching 256
    random rows' vectors from a 10k collection took p50 6.1 ms inline against 13.4 ms TOASTed
    (binary cursor; text ``vec::real[]``: 75 / 92 ms). A new column type brings the type's
    default storage back: a reindex sets this again."""
    db.execute(f"ALTER TABLE {table} ALTER COLUMN vec SET STORAGE MAIN")


def advance(db: psycopg.Connection[Any], collection_id: int) -> None:
    """Record the collection's newest seq (in the inserting transaction, under its row lock):
    a cache compares it with what it loaded, so an unchanged collection costs a search no
    query on its faces table. max() of the primary key is one index probe."""
    db.execute(
        f"UPDATE gallery_collections SET last_seq = (SELECT coalesce(max(seq), 0) "
        f"FROM {faces_table(collection_id)}) WHERE id = %s",
        (collection_id,),
    )


def _migrate(db: psycopg.Connection[Any]) -> None:
    """Bring a gallery made before the two-stage search up to date: a ``changes`` counter, a
    ``code`` column (the loader computes the missing codes from the vectors and stores them),
    vectors kept inline, and no HNSW index (no search uses it; every insert would still pay for
    it). Each ALTER takes an exclusive lock on its table, so it runs only where needed: a
    process start must not queue behind a long search or compaction."""
    _add_column(db, "changes bigint NOT NULL DEFAULT 0")
    if _add_column(db, "last_seq bigint NOT NULL DEFAULT 0"):
        tables = db.execute(
            "SELECT id FROM gallery_collections WHERE to_regclass('gallery_faces_' || id) IS NOT NULL"
        ).fetchall()
        for (collection_id,) in tables:
            advance(db, collection_id)
    old = db.execute(
        "SELECT c.id FROM gallery_collections c WHERE to_regclass('gallery_faces_' || c.id) IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass('gallery_faces_' "
        "|| c.id) AND a.attname = 'code')"
    ).fetchall()
    for (collection_id,) in old:
        table = faces_table(collection_id)
        db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS code bytea")
        keep_vectors_inline(db, table)  # rows written from now on
        db.execute(f"DROP INDEX IF EXISTS {table}_hnsw")


def _add_column(db: psycopg.Connection[Any], definition: str) -> bool:
    """Add ``definition``'s column to gallery_collections unless it is there; True if added.
    The catalog is asked first: ADD COLUMN IF NOT EXISTS would take the table's lock anyway."""
    column = definition.split(maxsplit=1)[0]
    present = db.execute(
        "SELECT 1 FROM pg_attribute WHERE attrelid = 'gallery_collections'::regclass AND attname = %s",
        (column,),
    ).fetchone()
    if present is None:
        db.execute(f"ALTER TABLE gallery_collections ADD COLUMN {definition}")
    return present is None
