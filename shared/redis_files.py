"""Rewriting Redis's persistence files, so that what was deleted from Redis leaves its disk too.

Redis appends every write to its append-only file (AOF): a job's input (photos) and result
(subject names) stay in it after their keys are deleted or expired, until the AOF is rewritten
from the live keys. Redis 7 keeps the AOF as a base file and increment files in
``appenddirname``; a rewrite writes a new base (from the live keys only) and a new increment, and
removes the old ones once the new manifest is in place. An RDB snapshot (``dump.rdb``, only with
save points; facerest's own Redis runs with ``--save ""``) holds the keys of its moment until the
next save. docs/security.md says what this covers and what not (replicas, backups).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

import redis

# A rewrite forks and writes the live keys (job inputs in flight, results): seconds even for a
# busy Redis. Past this the caller reports it unconfirmed; Redis still finishes it.
REWRITE_TIMEOUT_S = 120.0
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class _Child:
    """One kind of Redis background save, as INFO persistence reports it."""

    command: tuple[str, ...]
    count: str  # finished saves so far (Redis 7+)
    running: str
    scheduled: str | None
    status: str  # "ok" or "err", of the last one


AOF = _Child(
    ("BGREWRITEAOF",),
    "aof_rewrites",
    "aof_rewrite_in_progress",
    "aof_rewrite_scheduled",
    "aof_last_bgrewrite_status",
)
# SCHEDULE: started once an AOF rewrite running now ends, instead of an error.
RDB = _Child(("BGSAVE", "SCHEDULE"), "rdb_saves", "rdb_bgsave_in_progress", None, "rdb_last_bgsave_status")


def rewrite(client: redis.Redis, timeout_s: float = REWRITE_TIMEOUT_S) -> bool:
    """Rewrite Redis's files from its live keys and wait for it: the AOF when on, and the RDB
    snapshot when save points are set. True once every file Redis keeps was rewritten after this
    call began (also when it keeps none); False when Redis refused, failed or took too long."""
    deadline = time.monotonic() + timeout_s
    try:
        info = _info(client)
        if int(info.get("aof_enabled", 0)) and not _save(client, AOF, deadline):
            return False
        saves = cast(dict[str, str], client.config_get("save")).get("save", "")
        return not saves.strip() or _save(client, RDB, deadline)
    except redis.ResponseError:  # CONFIG or BGREWRITEAOF renamed or denied (a managed Redis)
        return False


def _info(client: redis.Redis) -> dict[str, Any]:
    return client.info("persistence")


def _busy(info: dict[str, Any], child: _Child) -> bool:
    return bool(int(info.get(child.running, 0)) or (child.scheduled and int(info.get(child.scheduled, 0))))


def _save(client: redis.Redis, child: _Child, deadline: float) -> bool:
    """Start one save of ``child``'s kind that begins after now, and wait until it ended well.

    One already running began before our deletes: wait for it to end, then start ours."""
    while True:
        before = _info(client)
        try:
            client.execute_command(*child.command)  # type: ignore[no-untyped-call]
            break
        except redis.ResponseError as exc:
            if "in progress" not in str(exc) or not _wait(client, child, deadline):
                raise
    while True:
        info = _info(client)
        counted = child.count not in before or int(info[child.count]) > int(before[child.count])
        if counted and not _busy(info, child):
            return str(info.get(child.status)) == "ok"
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)


def _wait(client: redis.Redis, child: _Child, deadline: float) -> bool:
    """Wait until no save of ``child``'s kind runs or is scheduled; False at the deadline."""
    while _busy(_info(client), child):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True
