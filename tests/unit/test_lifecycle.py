"""Draining: the flag a SIGTERM sets, and what /ready and /health answer meanwhile."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from api.app import create_app
from api.context import app_context
from api.lifecycle import Lifecycle, drain_on_signal
from shared.settings import load_settings


@pytest.fixture
def restore_sigusr2() -> Iterator[None]:
    before = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, before)


def test_signal_starts_draining_and_still_runs_the_previous_handler(restore_sigusr2: None) -> None:
    received: list[int] = []

    def previous(signum: int, frame: FrameType | None) -> None:
        received.append(signum)

    signal.signal(signal.SIGUSR2, previous)
    lifecycle = Lifecycle()
    drain_on_signal(lifecycle, signal.SIGUSR2)
    assert not lifecycle.draining
    os.kill(os.getpid(), signal.SIGUSR2)
    assert lifecycle.draining
    assert received == [signal.SIGUSR2]


def test_draining_app_is_neither_ready_nor_healthy() -> None:
    # Nothing listens on port 1: the draining answer must not depend on Redis.
    app = create_app(load_settings(redis_url="redis://127.0.0.1:1/0"))
    app_context(app).lifecycle.begin_drain()
    client = app.test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json == {"ready": False, "draining": True}
    assert client.get("/health").status_code == 503
