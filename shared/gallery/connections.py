"""One database connection per thread, for both gallery stores: neither sqlite3's nor psycopg's
connections may be used by two threads at once, and a store serves the API's and the worker's
threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=Closable)


class PerThread(Generic[C]):
    """Each thread's connection, made by ``connect`` at its first use (and again where ``broken``
    says the one it has can no longer serve); ``close`` closes every thread's."""

    def __init__(self, connect: Callable[[], C], broken: Callable[[C], bool] | None = None) -> None:
        self._connect = connect
        self._broken = broken
        self._opened: list[C] = []  # every thread's, for close()
        self._opened_lock = threading.Lock()
        self._local = threading.local()

    def get(self) -> C:
        db: C | None = getattr(self._local, "db", None)
        if db is None or (self._broken is not None and self._broken(db)):
            db = self._connect()
            self._local.db = db
            with self._opened_lock:
                self._opened.append(db)
        return db

    def close(self) -> None:
        """Close every thread's connection (call when no thread uses the store any more)."""
        with self._opened_lock:
            for db in self._opened:
                db.close()
            self._opened.clear()
        self._local = threading.local()
