"""Systems that only tests start, built on deploy/launcher.py's stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deploy.launcher import Stack, isolated


@contextmanager
def sentinel_stack(workdir: Path, **settings: str) -> Iterator[Stack]:
    """``stack`` with a Redis primary, a replica and three Sentinels instead of one Redis."""
    with isolated(workdir, settings) as result:
        result.start_redis_sentinel(workdir / "redis-ha")
        yield result
