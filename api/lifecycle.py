"""Graceful shutdown of an API process: stop being ready first, then let gunicorn drain.

gunicorn's gthread worker stops accepting on SIGTERM and finishes in-flight requests within
``graceful_timeout``; kept-alive connections (HAProxy's) may still carry a request meanwhile, so
the draining flag makes /ready and /health answer 503 and the balancer takes the replica out.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


class Lifecycle:
    """One per app: whether this process has begun to shut down."""

    def __init__(self) -> None:
        self._draining = threading.Event()

    def begin_drain(self) -> None:
        self._draining.set()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()


def drain_on_signal(lifecycle: Lifecycle, signum: int = signal.SIGTERM) -> None:
    """Begin draining when ``signum`` arrives, then run the handler installed before (gunicorn's)."""
    previous = signal.getsignal(signum)

    def handler(received: int, frame: FrameType | None) -> None:
        lifecycle.begin_drain()
        if callable(previous):
            previous(received, frame)

    signal.signal(signum, handler)
