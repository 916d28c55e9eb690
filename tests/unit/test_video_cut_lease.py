"""api/routes/videos.py's cut lease: the thread that keeps a video's cut alive, and what the cut
does once the store says it was found dead (a stall past its lease) or its video is gone."""

from __future__ import annotations

import threading
import time
from typing import cast

import pytest

from api.routes.videos import CutLease
from shared.errors import ServiceUnavailable
from shared.videos import VideoStore

LEASE_S = 0.2


class Store:
    """The one VideoStore call the lease makes: ``cutting``, answered by ``alive``."""

    def __init__(self, alive: bool) -> None:
        self.alive = alive
        self.calls: list[tuple[str, float]] = []
        self.called = threading.Event()

    def cutting(self, video_id: str, cut_s: float) -> bool:
        self.calls.append((video_id, cut_s))
        self.called.set()
        return self.alive


def test_a_live_cut_is_extended_every_quarter_lease_until_it_ends() -> None:
    store = Store(alive=True)
    with CutLease(cast(VideoStore, store), "v1", LEASE_S) as lease:
        time.sleep(LEASE_S * 1.5)
        lease.check()
    calls = len(store.calls)
    assert calls >= 2 and set(store.calls) == {("v1", LEASE_S)}
    time.sleep(LEASE_S)
    assert len(store.calls) == calls  # the thread stopped with the cut


def test_a_cut_found_dead_stops_at_its_next_check() -> None:
    store = Store(alive=False)
    with CutLease(cast(VideoStore, store), "v2", LEASE_S) as lease:
        assert store.called.wait(LEASE_S * 5)
        assert lease.lost.wait(LEASE_S)
        with pytest.raises(ServiceUnavailable, match="Idempotency-Key makes it anew"):
            lease.check()
    assert len(store.calls) == 1  # nothing extended after that
