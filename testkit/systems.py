"""Systems that only tests start, built on deploy/launcher.py's stack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import redis

from deploy.launcher import Stack, isolated
from testkit.postgres import files_holding


@contextmanager
def sentinel_stack(workdir: Path, **settings: str) -> Iterator[Stack]:
    """``stack`` with a Redis primary, a replica and three Sentinels instead of one Redis."""
    with isolated(workdir, settings) as result:
        result.start_redis_sentinel(workdir / "redis-ha")
        yield result


def redis_files_holding(client: redis.Redis, *needles: bytes) -> list[str]:
    """The files of the Redis server behind ``client`` (its AOF folder and RDB snapshot, not the
    stack's logs beside them) that hold any of ``needles``."""
    config = cast(dict[str, str], client.config_get("dir"))
    config |= cast(dict[str, str], client.config_get("appenddirname"))
    config |= cast(dict[str, str], client.config_get("dbfilename"))
    root = Path(config["dir"])
    held = files_holding(root / config["appenddirname"], *needles)
    snapshot = root / config["dbfilename"]
    if snapshot.is_file() and any(n in snapshot.read_bytes() for n in needles):
        held.append(snapshot.name)
    return held
