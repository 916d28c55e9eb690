"""Each process's copy of a collection's faces, brought up to date before every search (both stores).

A collection's row holds what a copy is checked against, read first by every search (one indexed
row): the collection's identity (one deleted and made again under its name is another), a counter
that every change to existing faces bumps (a delete, a rename, a reindex: the copy is made again)
and the newest face's seq (the copy loads only the faces after its own). So no process answers
from a stale copy, and an unchanged collection costs a search no query on its faces.

What a copy holds, and how it grows, is the store's: SQLite keeps the float vectors and makes a
new matrix for each load; PostgreSQL keeps 64-byte codes in spare capacity (codes.GrowingCodes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.errors import CollectionNotFound

Rows = TypeVar("Rows")


@dataclass(frozen=True, slots=True)
class Version:
    """What the collection's row says of its faces now."""

    identity: float  # SQLite: the collection's created time; PostgreSQL: its id
    changes: int  # bumped by every change to existing faces
    last_seq: int  # the newest face's seq


@dataclass(slots=True)
class _Copy(Generic[Rows]):
    identity: float
    changes: int
    loaded_to: int  # the last_seq its rows were loaded up to
    rows: Rows


class CollectionCache(Generic[Rows]):
    """The copies of one store handle, by collection name; safe to share between threads. ``Rows``
    must not change once handed out (a search reads it without the lock)."""

    def __init__(self) -> None:
        self._copies: dict[str, _Copy[Rows]] = {}
        self._lock = threading.Lock()

    def current(
        self,
        name: str,
        version: Version | None,
        empty: Callable[[], Rows],
        load: Callable[[Rows, int, int], Rows],
    ) -> Rows:
        """The collection's rows as of ``version`` (None: there is no such collection, and
        CollectionNotFound). ``load(rows, after, upto)`` gives ``rows`` with the faces whose
        seqs are in (after, upto] added, or raises CollectionNotFound; ``empty()`` starts a copy.
        Loads run under the lock: threads that search one collection at once load it once."""
        with self._lock:
            if version is None:
                self._copies.pop(name, None)
                raise CollectionNotFound(f"no collection {name!r}")
            copy = self._copies.get(name)
            if copy is None or (copy.identity, copy.changes) != (version.identity, version.changes):
                copy = _Copy(version.identity, version.changes, 0, empty())
                self._copies[name] = copy
            if copy.loaded_to < version.last_seq:
                try:
                    copy.rows = load(copy.rows, copy.loaded_to, version.last_seq)
                except CollectionNotFound:
                    del self._copies[name]
                    raise
                copy.loaded_to = version.last_seq
            return copy.rows

    def forget(self, name: str) -> None:
        with self._lock:
            self._copies.pop(name, None)
