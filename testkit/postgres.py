"""A real PostgreSQL with pgvector for the gallery benchmarks and tests: the pgserver wheel's
binaries (PostgreSQL 16, pgvector 0.6), in a fresh folder, stopped and removed at exit."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
