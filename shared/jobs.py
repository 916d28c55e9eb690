"""The job store in Redis: job inputs, states and results, shared by API and workers.

Keys (``{p}`` is the configured prefix); every value is a shared/contract.py type:
  {p}:job:{id}        hash: status, created, started, finished, worker, attempts (plain fields),
                      render (RenderSettings), error (ErrorInfo), result (JobResult)
  {p}:job:{id}:input  the Job (raw image bytes), deleted when the job finishes
  {p}:job:{id}:done   list that receives one token when the job ends, for blocking waits
  {p}:worker:{name}   a worker's heartbeat (WorkerInfo as JSON), expiring unless refreshed
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

import redis

from shared.contract import (
    ErrorInfo,
    Job,
    JobResult,
    RenderSettings,
    WorkerInfo,
    decode_error,
    decode_job,
    decode_render,
    decode_result,
    decode_worker,
    encode,
    encode_worker,
)
from shared.errors import JobNotFound


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED})


@dataclass(frozen=True, slots=True)
class JobState:
    id: str
    status: JobStatus
    created: float
    started: float | None
    finished: float | None
    worker: str | None
    attempts: int
    error: ErrorInfo | None
    result: JobResult | None
    render: RenderSettings | None


class JobStore:
    """Typed access to job keys; one instance per process, thread-safe through redis-py's pool."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, job_id: str, suffix: str = "") -> str:
        return f"{self._prefix}:job:{job_id}{suffix}"

    def create(self, job_id: str, job: Job, render: RenderSettings) -> None:
        """Store the input and the queued state atomically, before the task is sent."""
        state: dict[Any, str | float | bytes] = {
            "status": JobStatus.QUEUED.value,
            "created": time.time(),
            "render": encode(render),
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._key(job_id, ":input"), encode(job), ex=self._ttl_s)
        pipe.hset(self._key(job_id), mapping=state)
        pipe.expire(self._key(job_id), self._ttl_s)
        pipe.execute()

    def replicate(self, job_id: str, replicas: int, timeout_ms: int) -> int:
        """Wait until ``replicas`` replicas hold everything written to the primary so far (the
        job and its queue message included); returns how many acknowledged in ``timeout_ms``.

        WAIT counts the writes of its own connection, hence one write before it on the same
        connection: the replication stream is ordered, so once a replica has that write it has
        every earlier one, from any client."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.expire(self._key(job_id), self._ttl_s)
        pipe.execute_command("WAIT", replicas, timeout_ms)  # type: ignore[no-untyped-call]
        return int(pipe.execute()[-1])

    def load_input(self, job_id: str) -> Job | None:
        data = self._redis.get(self._key(job_id, ":input"))
        return None if data is None else decode_job(cast(bytes, data))

    def add_attempt(self, job_id: str) -> int:
        """Count one more delivery of the job to a worker; returns the count so far."""
        return int(self._redis.hincrby(self._key(job_id), "attempts", 1))

    def mark_running(self, job_id: str, worker: str) -> None:
        self._redis.hset(
            self._key(job_id),
            mapping={"status": JobStatus.RUNNING, "started": time.time(), "worker": worker},
        )

    def finish(self, job_id: str, outcome: JobResult | ErrorInfo) -> None:
        """Record the result or the job's error, drop the input and wake any synchronous waiter."""
        fields: dict[Any, str | float | bytes] = {"finished": time.time()}
        if isinstance(outcome, ErrorInfo):
            fields |= {"status": JobStatus.FAILED.value, "error": encode(outcome)}
        else:
            fields |= {"status": JobStatus.DONE.value, "result": encode(outcome)}
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(job_id), mapping=fields)
        pipe.expire(self._key(job_id), self._ttl_s)
        pipe.delete(self._key(job_id, ":input"))
        pipe.rpush(self._key(job_id, ":done"), b"1")
        pipe.expire(self._key(job_id, ":done"), self._ttl_s)
        pipe.execute()

    def state(self, job_id: str) -> JobState:
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._key(job_id)))
        if not raw:
            raise JobNotFound(f"no job with id {job_id!r} (unknown or expired)")

        def num(name: bytes) -> float | None:
            return float(raw[name]) if name in raw else None

        return JobState(
            id=job_id,
            status=JobStatus(raw[b"status"].decode()),
            created=float(raw.get(b"created", b"0")),
            started=num(b"started"),
            finished=num(b"finished"),
            worker=raw[b"worker"].decode() if b"worker" in raw else None,
            attempts=int(raw.get(b"attempts", b"0")),
            error=decode_error(raw[b"error"]) if b"error" in raw else None,
            result=decode_result(raw[b"result"]) if b"result" in raw else None,
            render=decode_render(raw[b"render"]) if b"render" in raw else None,
        )

    def wait(self, job_id: str, timeout_s: float) -> JobState:
        """Block until the job has finished or the timeout passes; return its latest state."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.state(job_id)
            remaining = deadline - time.monotonic()
            if state.status in FINISHED or remaining <= 0:
                return state
            # BLPOP's timeout has one-second granularity on old servers; poll at most every 1 s.
            popped = self._redis.blpop([self._key(job_id, ":done")], timeout=min(remaining, 1.0))
            if popped is not None:
                # Leave the token for any other waiter (a retried request on another replica).
                self._redis.rpush(self._key(job_id, ":done"), b"1")
                return self.state(job_id)


class WorkerRegistry:
    """Workers announce themselves with expiring heartbeat keys; the API reads them."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def beat(self, info: WorkerInfo, ttl_s: int) -> None:
        self._redis.set(f"{self._prefix}:worker:{info.name}", encode_worker(info), ex=ttl_s)

    def remove(self, name: str) -> None:
        self._redis.delete(f"{self._prefix}:worker:{name}")

    def online(self) -> list[WorkerInfo]:
        keys = sorted(self._redis.scan_iter(match=f"{self._prefix}:worker:*", count=100))
        values = cast(list[bytes | None], self._redis.mget(keys)) if keys else []
        return [decode_worker(v) for v in values if v is not None]
