"""A real PostgreSQL with pgvector for the gallery benchmarks and tests: the pgserver wheel's
binaries (PostgreSQL 16, pgvector 0.6), in a fresh folder, stopped and removed at exit."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a PostgreSQL server; yields its URL (a Unix socket in its data folder).

    The folder is made directly under the system's temporary directory: run as root, pgserver
    runs the server as its own user, which must be able to reach the folder (pytest's tmp_path
    is under a root-only directory).
    """
    folder = Path(tempfile.mkdtemp(prefix="facerest-pg-"))
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.simplefilter("ignore")
        from pgserver import postgres_server

        # "delete" (not "stop"): its cleanup also drops its exit hook, which would otherwise run
        # again at interpreter exit and log to streams pytest has closed by then.
        server = postgres_server.get_server(folder, cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server at ``server_url`` (dropped first if there);
    its URL. Test modules that share one server each keep their tables in their own database."""
    with psycopg.connect(server_url, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def postgres_data_dir(url: str) -> Path:
    """The server's data directory, with its WAL set to be removed at a checkpoint.

    docs/recognition.md: with wal_recycle on, a checkpoint renames old WAL segments for reuse
    instead of removing them, and their bytes stay until new WAL overwrites them."""
    with psycopg.connect(url, autocommit=True) as db:
        row = db.execute("SHOW data_directory").fetchone()
        assert row is not None
        db.execute("ALTER SYSTEM SET wal_recycle = off")
        db.execute("SELECT pg_reload_conf()")
        return Path(row[0])


def files_holding(root: Path, *needles: bytes) -> list[str]:
    """The files under ``root`` that hold any of ``needles``."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and any(n in path.read_bytes() for n in needles)
    )
