"""What both gallery stores build on: per-thread connections (shared/gallery/connections.py), the
freshness check of their caches (shared/gallery/cache.py) and the PostgreSQL store's growing codes
(shared/gallery/codes.py). The stores themselves, on real databases, are
tests/integration/test_gallery.py."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pytest

from shared.errors import CollectionNotFound
from shared.gallery.cache import CollectionCache, Version
from shared.gallery.codes import GrowingCodes, sign_codes
from shared.gallery.connections import PerThread


@dataclass
class Connection:
    closed: bool = False

    def close(self) -> None:
        self.closed = True


def test_each_thread_has_its_own_connection_until_it_breaks_and_close_closes_all() -> None:
    made: list[Connection] = []

    def connect() -> Connection:
        made.append(Connection())
        return made[-1]

    connections = PerThread(connect, broken=lambda db: db.closed)
    mine = connections.get()
    assert connections.get() is mine
    theirs: list[Connection] = []
    thread = threading.Thread(target=lambda: theirs.extend([connections.get(), connections.get()]))
    thread.start()
    thread.join()
    assert theirs[0] is theirs[1] is not mine
    mine.close()  # e.g. the server restarted
    again = connections.get()
    assert again is not mine and connections.get() is again
    connections.close()
    assert len(made) == 3 and all(db.closed for db in made)
    assert connections.get() is not again  # a store used after close() connects afresh


def test_a_copy_loads_only_new_faces_and_starts_again_after_a_change_or_a_new_incarnation() -> None:
    cache: CollectionCache[tuple[int, ...]] = CollectionCache()
    loads: list[tuple[int, int]] = []

    def load(rows: tuple[int, ...], after: int, upto: int) -> tuple[int, ...]:
        loads.append((after, upto))
        return rows + tuple(range(after + 1, upto + 1))

    def current(identity: float, changes: int, last_seq: int) -> tuple[int, ...]:
        return cache.current("c", Version(identity, changes, last_seq), tuple, load)

    assert current(1, 0, 3) == (1, 2, 3)
    assert current(1, 0, 3) == (1, 2, 3)  # unchanged: no load
    assert current(1, 0, 5) == (1, 2, 3, 4, 5)
    assert current(1, 1, 5) == (1, 2, 3, 4, 5)  # a delete or rename: loaded again from the start
    assert current(2, 1, 6) == (1, 2, 3, 4, 5, 6)  # made again under the name: another collection
    assert loads == [(0, 3), (3, 5), (0, 5), (0, 6)]


def test_a_missing_collection_drops_its_copy() -> None:
    cache: CollectionCache[str] = CollectionCache()
    loads: list[int] = []

    def load(rows: str, after: int, upto: int) -> str:
        loads.append(upto)
        if upto == 9:  # the faces table went away meanwhile
            raise CollectionNotFound("gone")
        return rows + "x" * (upto - after)

    assert cache.current("c", Version(1, 0, 2), str, load) == "xx"
    with pytest.raises(CollectionNotFound):
        cache.current("c", None, str, load)
    assert cache.current("c", Version(1, 0, 2), str, load) == "xx" and loads == [2, 2]
    with pytest.raises(CollectionNotFound):
        cache.current("c", Version(1, 0, 9), str, load)
    assert cache.current("c", Version(1, 0, 2), str, load) == "xx" and loads == [2, 2, 9, 2]


def test_growing_codes_keep_every_earlier_snapshot_unchanged() -> None:
    vectors = np.random.default_rng(5).standard_normal((40, 100)).astype(np.float32)
    codes = sign_codes(vectors)
    grown = GrowingCodes.empty(100)
    snapshots = []
    capacities = []
    for start, stop in [(0, 1), (1, 2), (2, 3), (3, 7), (7, 8), (8, 40)]:
        grown = grown.appended(np.arange(start, stop, dtype=np.int64), codes[:, start:stop])
        seqs, seen = grown.snapshot()
        snapshots.append((stop, seqs.copy(), seen.copy(), seqs, seen))
        capacities.append(len(grown.seqs))
    assert capacities == [1, 2, 4, 8, 8, 40]  # doubled while it fits, then what the append needs
    for stop, seqs_then, seen_then, seqs, seen in snapshots:
        assert np.array_equal(seqs, seqs_then) and np.array_equal(seen, seen_then)
        assert np.array_equal(seqs, np.arange(stop)) and np.array_equal(seen, codes[:, :stop])
