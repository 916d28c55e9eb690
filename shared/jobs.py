"""The job store in Redis: job inputs, states, results and who runs what, shared by API and workers.

Keys (``{p}`` is the configured prefix); every value is a shared/contract.py type, and every key
either expires or has a bounded size:
  {p}:job:{id}        hash: status, created, started, finished, worker, attempts, sent, collection
                      (plain fields; collection for the jobs of one), requeued_at (when a reaper
                      last took it back from a dead worker), callback (its URL),
                      cb_status, cb_attempts, cb_error (its delivery: shared/webhooks.py),
                      render (RenderSettings, with the owner: the creator's API key digest),
                      error (ErrorInfo), result (JobResult); TTL result_ttl_s, cut to
                      sync_result_ttl_s once a synchronous request delivered it.
                      A request split in several jobs (shared/split.py) is a parent hash with
                      children (their ids, in request order), left (how many have not ended) and
                      images, and no input, result or message of its own; each child is a job
                      with parent (its id) and images, queued on its own. The parent ends with
                      its last child (FINISH), and ``state`` gathers it from them.
  {p}:job:{id}:input  the Job (raw image bytes); TTL result_ttl_s, deleted when the job finishes
  {p}:job:{id}:done   list holding one token once the job ended, for blocking waits; TTL result_ttl_s.
                      Waiters rotate it (BLMOVE onto itself) and never empty it, so it keeps its TTL.
  {p}:idem:{digest}   IdempotencyRecord of an Idempotency-Key (scoped by API key; names the job, the
                      body's digest and the route); TTL result_ttl_s
  {p}:workers         hash: worker name -> Heartbeat (JSON, expiry in Redis's clock); one entry per
                      live worker, a dead one's removed by the reaper once its jobs went back
  {p}:running         hash: job id -> the worker that claimed it; one entry per job in flight
  {p}:pending         sorted set: job id -> created time, of every unfinished job; an entry leaves
                      when its job finishes, or with the reaper's trim once the job expired
  {p}:primary         the run id of the Redis server that served the last reaper (fixed size)
  {p}:webhooks        sorted set: job id -> when its callback is due (Redis's clock): the outbox
                      (shared/webhooks.py); an entry leaves once delivered, failed or expired
A video is one job (VideoJob) and one per segment ("{id}.{n}"); its progress and partial tracks
are shared/videos.py's {p}:video:{id}.

Erasure: a collection's compaction deletes its finished jobs (``forget_collection``: their results
name subjects) and rewrites Redis's files (shared/redis_files.py), so that no photo or name of a
deleted subject is left on Redis's disk either (docs/security.md).

Who runs a job: a worker *claims* it before running (``claim``: refused while another live worker
holds it, or once it finished) and releases it when it finishes. A worker whose heartbeat expired
while holding claims is dead: any worker's reaper (worker/reaper.py) takes each of its jobs back
(atomically, so one reaper wins) and queues it again. A redelivered copy of a finished or held job is dropped.

After a Redis failover or restart the broker's own bookkeeping may be behind the job store (a
message popped from the queue whose unacked record never reached the replica is gone from both):
the first reaper to see the new server sends every unfinished job again. That is safe because a
redelivered copy of a finished or held job is dropped at its claim.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import cast

import redis

from shared.contract import (
    CompactJob,
    ErrorInfo,
    ExtractJob,
    Heartbeat,
    IdempotencyRecord,
    Job,
    JobResult,
    ReclusterJob,
    ReindexJob,
    RenderSettings,
    VideoJob,
    VideoSegmentJob,
    WorkerInfo,
    decode_error,
    decode_heartbeat,
    decode_idempotency,
    decode_job,
    decode_render,
    decode_result,
    encode,
    encode_heartbeat,
)
from shared.errors import JobNotFound
from shared.redis_files import rewrite
from shared.split import merge_results
from shared.webhooks import HANDOFF_GRACE_S, CallbackStatus, outbox_key

# Redis's clock, in seconds, inside a script (TIME is allowed in scripts since Redis 5's effects
# replication, the default from 7).
_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"
# Whether worker ARGV/holder is alive: its registry entry exists and has not expired.
_ALIVE = """
local function alive(workers, name, now)
  local beat = redis.call('HGET', workers, name)
  return beat ~= false and cjson.decode(beat)['expires_at'] > now
end
local function finished(status)
  return status == false or status == 'done' or status == 'failed'
end
"""

# KEYS: job hash, running hash, workers hash. ARGV: job id, worker.
# -> {'claimed', attempts} | {'held', holder} | {'finished', ''}
CLAIM = (
    _NOW
    + _ALIVE
    + """
if finished(redis.call('HGET', KEYS[1], 'status')) then return {'finished', ''} end
local holder = redis.call('HGET', KEYS[2], ARGV[1])
if holder and holder ~= ARGV[2] and alive(KEYS[3], holder, now) then return {'held', holder} end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return {'claimed', tostring(redis.call('HINCRBY', KEYS[1], 'attempts', 1))}
"""
)

# KEYS: job hash, input, done list, running hash, pending set, webhook outbox. ARGV: job id, worker,
# ttl, outcome field, outcome, status, finished time, the outbox's hand-off grace, the job key
# prefix ("{p}:job:"). The first outcome wins: a job is finished once. A job with a callback enters
# the outbox in the same step, so that its delivery cannot be lost between the two; so does the
# parent of a split request when its last child finishes here.
# -> {2, the job (or parent) that entered the outbox} | {1, ''} (finished) | 0
FINISH = (
    _NOW
    + _ALIVE
    + """
if redis.call('HGET', KEYS[4], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[4], ARGV[1]) end
if finished(redis.call('HGET', KEYS[1], 'status')) then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[6], ARGV[4], ARGV[5], 'finished', ARGV[7])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[5], ARGV[1])
local share = redis.call('HGET', KEYS[1], 'share')
if share then redis.call('ZREM', share, ARGV[1]) end
redis.call('RPUSH', KEYS[3], '1')
redis.call('EXPIRE', KEYS[3], ARGV[3])
if redis.call('HEXISTS', KEYS[1], 'callback') == 1 then
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[8]), ARGV[1])
  return {2, ARGV[1]}
end
local parent = redis.call('HGET', KEYS[1], 'parent')
if not parent then return {1, ''} end
-- A split request's child: its parent ends with its last child, failed if any child failed.
local pkey = ARGV[9] .. parent
if redis.call('EXISTS', pkey) == 0 or redis.call('HINCRBY', pkey, 'left', -1) > 0 then return {1, ''} end
if finished(redis.call('HGET', pkey, 'status')) then return {1, ''} end
local status = 'done'
for id in string.gmatch(redis.call('HGET', pkey, 'children'), '[^,]+') do
  if redis.call('HGET', ARGV[9] .. id, 'status') == 'failed' then status = 'failed' end
  -- The children hold the parent's result: they expire with it, not before.
  redis.call('EXPIRE', ARGV[9] .. id, ARGV[3])
  redis.call('EXPIRE', ARGV[9] .. id .. ':done', ARGV[3])
end
redis.call('HSET', pkey, 'status', status, 'finished', ARGV[7])
redis.call('EXPIRE', pkey, ARGV[3])
local pshare = redis.call('HGET', pkey, 'share')
if pshare then redis.call('ZREM', pshare, parent) end
redis.call('RPUSH', pkey .. ':done', '1')
redis.call('EXPIRE', pkey .. ':done', ARGV[3])
if redis.call('HEXISTS', pkey, 'callback') == 1 then
  redis.call('ZADD', KEYS[6], now + tonumber(ARGV[8]), parent)
  return {2, parent}
end
return {1, ''}
"""
)

# KEYS: job hash, running hash, workers hash. ARGV: job id, the holder the reaper saw dead, '1'
# when the holder is the caller itself (alive, but no longer running the job). Takes the claim
# and marks the job queued again, noting when (``requeued_at``: the caller sends it next, so
# another reaper looking for lost jobs leaves it alone a while). -> 1 (re-queue it) | 0
TAKE_BACK = (
    _NOW
    + _ALIVE
    + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
if ARGV[3] ~= '1' and alive(KEYS[3], ARGV[2], now) then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
if finished(redis.call('HGET', KEYS[1], 'status')) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued', 'requeued_at', tostring(now))
redis.call('HDEL', KEYS[1], 'worker', 'started')
return 1
"""
)

# KEYS: workers hash. ARGV: name. Drops the entry only if it is (still) expired. -> 1 | 0
FORGET = (
    _NOW
    + """
local beat = redis.call('HGET', KEYS[1], ARGV[1])
if beat and cjson.decode(beat)['expires_at'] <= now then return redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0
"""
)

# KEYS: input, job hash, pending set, idempotency record, owner's share set. ARGV: input, ttl,
# record ('' without an Idempotency-Key), job id, created time, the share's job cap (0: none),
# its image cap, this job's images, the job key prefix ("{p}:job:"), the number n of children
# (0: a plain job), n triples (child id, its input, its images), the number m of the children's
# field tokens and those m tokens, then the job's fields and values. A split request's parent has
# no input and no queue message: its children are queued jobs (in the pending set) that name it,
# and it lists them. The record and the job are made together: a key never names a job that was
# not stored. The share counts the parent alone, with all its images: one request, one slot.
# The share set holds the owner's unfinished jobs, scored by when they expire: entries of jobs
# that finished (FINISH removes them), expired or outlived their deadline are dropped here, so a
# lost worker or a job that never finished cannot hold a slot for longer than result_ttl_s.
# -> {'exists', record} (the job was not created) | {'full', jobs, images} | {'created'}
CREATE = (
    _NOW
    + _ALIVE
    + """
if ARGV[3] ~= '' then
  local existing = redis.call('GET', KEYS[4])
  if existing then return {'exists', existing} end
end
local cap = tonumber(ARGV[6])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  local jobs, images = 0, 0
  for _, id in ipairs(redis.call('ZRANGE', KEYS[5], 0, -1)) do
    local job = redis.call('HMGET', ARGV[9] .. id, 'status', 'images')
    if finished(job[1]) then
      redis.call('ZREM', KEYS[5], id)
    else
      jobs = jobs + 1
      images = images + (tonumber(job[2]) or 0)
    end
  end
  -- A request alone may carry more images than the cap (max_images bounds it): it waits until
  -- its owner has nothing else in flight.
  if jobs >= cap or (jobs > 0 and images + tonumber(ARGV[8]) > tonumber(ARGV[7])) then
    return {'full', jobs, images}
  end
  redis.call('ZADD', KEYS[5], now + tonumber(ARGV[2]), ARGV[4])
  redis.call('EXPIRE', KEYS[5], ARGV[2])
end
if ARGV[3] ~= '' then redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[2]) end
local n = tonumber(ARGV[10])
local m = tonumber(ARGV[11 + 3 * n])
redis.call('HSET', KEYS[2], unpack(ARGV, 12 + 3 * n + m))
if cap > 0 then redis.call('HSET', KEYS[2], 'share', KEYS[5]) end
if cap > 0 or n > 0 then redis.call('HSET', KEYS[2], 'images', ARGV[8]) end
if n == 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[4])
else
  local ids = {}
  local fields = {unpack(ARGV, 12 + 3 * n, 11 + 3 * n + m)}
  for i = 0, n - 1 do
    local id = ARGV[11 + 3 * i]
    local key = ARGV[9] .. id
    redis.call('SET', key .. ':input', ARGV[12 + 3 * i], 'EX', ARGV[2])
    redis.call('HSET', key, 'parent', ARGV[4], 'images', ARGV[13 + 3 * i], unpack(fields))
    redis.call('EXPIRE', key, ARGV[2])
    redis.call('ZADD', KEYS[3], ARGV[5], id)
    table.insert(ids, id)
  end
  redis.call('HSET', KEYS[2], 'children', table.concat(ids, ','), 'left', n)
end
redis.call('EXPIRE', KEYS[2], ARGV[2])
return {'created'}
"""
)

# KEYS: idempotency record. ARGV: the record as stored. Deletes it only if it is (still) that one.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: pending set. ARGV: the job key prefix ("{p}:job:"). Drops entries whose job expired.
# -> the ids of unfinished jobs
UNFINISHED = """
local unfinished = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local status = redis.call('HGET', ARGV[1] .. id, 'status')
  if status == false then
    redis.call('ZREM', KEYS[1], id)
  elseif status ~= 'done' and status ~= 'failed' then
    table.insert(unfinished, id)
  end
end
return unfinished
"""


def job_images(job: Job) -> int:
    """The images a job carries (a reindex, compact, re-cluster or video carries none), for its
    owner's share."""
    if isinstance(job, ReindexJob | CompactJob | ReclusterJob | VideoJob | VideoSegmentJob):
        return 0
    return len(job.images)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


FINISHED = frozenset({JobStatus.DONE, JobStatus.FAILED})


@dataclass(frozen=True, slots=True)
class CallbackState:
    """A job's webhook delivery (shared/webhooks.py): CallbackStatus, attempts made, the last
    attempt's error ("" none)."""

    status: CallbackStatus
    attempts: int
    last_error: str


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
    # Its message was sent (recorded only for jobs made with an Idempotency-Key, whose retries
    # send it again when the request that made the job died before sending).
    sent: bool = False
    callback: CallbackState | None = None  # None: the job has no callback URL
    callback_url: str | None = None
    progress: tuple[int, int] | None = None  # (done, total) as a long job last reported it
    children: tuple[str, ...] = ()  # a split request's jobs (shared/split.py), in request order
    images: int = 0  # the images it carries, as counted in its owner's share (and a child's)


# A running job's progress, written only while it runs: a late report never recreates an expired
# job's key (without a TTL) nor touches a finished one.
PROGRESS = """
if redis.call('HGET', KEYS[1], 'status') == 'running' then
    redis.call('HSET', KEYS[1], 'progress', ARGV[1])
end
"""


# KEYS: job hash, input. ARGV: worker, time, ttl. A video's job turns running with its first
# segment, and each segment gives it result_ttl_s more (a long video outlives one TTL while it
# runs); never recreates a deleted job's key, nor touches a finished one.
STARTED = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'queued' then
    redis.call('HSET', KEYS[1], 'status', 'running', 'started', ARGV[2], 'worker', ARGV[1])
end
if status == 'queued' or status == 'running' then
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    redis.call('EXPIRE', KEYS[2], ARGV[3])
end
"""


@dataclass(frozen=True, slots=True)
class Share:
    """An owner's bounded share of the queue: at most ``max_jobs`` unfinished jobs holding at most
    ``max_images`` images (a lone job may hold more). ``owner`` names it: an API key's digest,
    or a client address with keys off."""

    owner: str
    max_jobs: int
    max_images: int


@dataclass(frozen=True, slots=True)
class ShareFull:
    """``JobStore.create``'s refusal: the owner's share is taken (what it holds now)."""

    jobs: int
    images: int


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to ``JobStore.claim``: run it (``attempts`` deliveries so far) or drop this copy."""

    granted: bool
    attempts: int = 0
    holder: str | None = None  # the live worker running it, when refused for that
    finished: bool = False


class JobStore:
    """Typed access to job keys; one instance per process, thread-safe through redis-py's pool.

    ``handoff``: called with the id of each job that finished here with a callback, after it
    entered the outbox (a worker sends the courier its deliver message).
    """

    def __init__(
        self, client: redis.Redis, prefix: str, ttl_s: int, handoff: Callable[[str], None] | None = None
    ) -> None:
        self._redis = client
        self._handoff = handoff
        self._outbox = outbox_key(prefix)
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._running = f"{prefix}:running"
        self._workers = f"{prefix}:workers"
        self._pending = f"{prefix}:pending"
        self._primary = f"{prefix}:primary"
        self._claim = client.register_script(CLAIM)
        self._finish = client.register_script(FINISH)
        self._take_back = client.register_script(TAKE_BACK)
        self._create = client.register_script(CREATE)
        self._unfinished = client.register_script(UNFINISHED)
        self._progress = client.register_script(PROGRESS)
        self._started = client.register_script(STARTED)
        self._release = client.register_script(RELEASE)

    def _key(self, job_id: str, suffix: str = "") -> str:
        return f"{self._prefix}:job:{job_id}{suffix}"

    def idempotency_key(self, scope: str, key: str) -> str:
        """The Redis key of a client's Idempotency-Key, within ``scope`` (an API key digest or "")."""
        digest = hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()
        return f"{self._prefix}:idem:{digest}"

    def share_key(self, owner: str) -> str:
        """The sorted set of ``owner``'s unfinished jobs (job id -> when its entry expires)."""
        return f"{self._prefix}:share:{owner}"

    def share_jobs(self, owner: str) -> list[str]:
        """The jobs counted in ``owner``'s share, as the last admission left them."""
        return [
            job_id.decode() for job_id in cast(list[bytes], self._redis.zrange(self.share_key(owner), 0, -1))
        ]

    def create(
        self,
        job_id: str,
        job: Job,
        render: RenderSettings,
        idempotency: tuple[str, str] | None = None,
        route: str = "",
        share: Share | None = None,
        queue: str = "",
        callback: str = "",
        children: Sequence[tuple[str, Job]] = (),
    ) -> IdempotencyRecord | ShareFull | None:
        """Store the input and the queued state atomically, before the task is sent; None once done.

        ``idempotency`` (the Redis key from ``idempotency_key``, the body's digest): record the key
        with the job and the request's ``route`` (method and path), unless the key is taken; then
        nothing is created and its record is returned.
        ``share``: count the job in its owner's share, unless that is full; then nothing is created
        and ShareFull says what the owner holds. A retry (a key taken) is answered before the share
        is counted: it makes no job.
        ``queue``: the lane its message goes to (shared/queue.py lane_for), recorded so that a job
        sent again (``queue_of``) waits in the same lane.
        ``callback``: the URL its envelope is POSTed to when it ends (shared/webhooks.py).
        ``children``: a request split in several jobs (shared/split.py), each child's id and job.
        ``job`` is then the whole request, kept only as the parent's record (no input, no message):
        the children are the queued jobs, each sent as its own message; the parent
        ends when its last child does, and ``state`` gathers them.
        """
        created = time.time()
        state: list[str | float | bytes] = [
            "status",
            JobStatus.QUEUED.value,
            "created",
            created,
            "render",
            encode(render),
        ]
        collection = collection_of(job)
        if collection is not None:
            state += ["collection", collection]
        if queue:
            state += ["queue", queue]
        inherited = list(state)  # a child's own fields: never the callback, share or key
        if callback:
            state += ["callback", callback, "cb_status", CallbackStatus.PENDING.value, "cb_attempts", 0]
        record = b""
        idem_key = self._key(job_id, ":idem-unused")  # never written: the record arg is empty
        if idempotency is not None:
            idem_key, record = idempotency[0], encode(IdempotencyRecord(job_id, idempotency[1], route))
        share_key = self.share_key(share.owner) if share is not None else self._key(job_id, ":share-unused")
        caps = (share.max_jobs, share.max_images) if share is not None else (0, 0)
        keys = [self._key(job_id, ":input"), self._key(job_id), self._pending, idem_key, share_key]
        args: list[str | float | bytes] = [b"" if children else encode(job), self._ttl_s, record, job_id]
        args += [created, *caps, job_images(job), self._key(""), len(children)]
        for child_id, child in children:
            args += [child_id, encode(child), job_images(child)]
        args += [len(inherited), *inherited, *state]
        outcome = cast(list[bytes | int], self._create(keys=keys, args=args))
        match outcome:
            case [b"exists", bytes(existing)]:
                return decode_idempotency(existing)
            case [b"full", int(jobs), int(images)]:
                return ShareFull(jobs, images)
            case _:
                return None

    def release(self, key: str, record: IdempotencyRecord) -> None:
        """Forget an Idempotency-Key whose job was erased before it was whole (a video refused
        while it was cut): a retry then makes the job anew. Only ``record``: never a later one."""
        self._release(keys=[key], args=[encode(record)])

    def idempotency(self, key: str) -> IdempotencyRecord | None:
        data = self._redis.get(key)
        return None if data is None else decode_idempotency(cast(bytes, data))

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

    def claim(self, job_id: str, worker: str) -> Claim:
        """Make ``worker`` the job's one runner and count the delivery, unless it finished or
        another live worker runs it (a redelivered copy: the caller drops it)."""
        outcome, value = cast(
            list[bytes],
            self._claim(keys=[self._key(job_id), self._running, self._workers], args=[job_id, worker]),
        )
        match outcome:
            case b"claimed":
                return Claim(True, attempts=int(value))
            case b"held":
                return Claim(False, holder=value.decode())
            case _:
                return Claim(False, finished=True)

    def queue_of(self, job_id: str) -> str | None:
        """The lane the job was sent to (``create``'s ``queue``); None when it has none recorded."""
        value = self._redis.hget(self._key(job_id), "queue")
        return None if value is None else cast(bytes, value).decode()

    def mark_sent(self, job_id: str) -> None:
        self._redis.hset(self._key(job_id), "sent", 1)

    def mark_running(self, job_id: str, worker: str) -> None:
        self._redis.hset(
            self._key(job_id),
            mapping={"status": JobStatus.RUNNING, "started": time.time(), "worker": worker},
        )

    def mark_started(self, job_id: str, worker: str) -> None:
        """A queued job that no task runs (a video: its segments run) has started, or goes on:
        it expires result_ttl_s from now."""
        self._started(
            keys=[self._key(job_id), self._key(job_id, ":input")], args=[worker, time.time(), self._ttl_s]
        )

    def erase(self, job_ids: list[str]) -> None:
        """Delete jobs, finished or not (a cancelled video and its segments): a queued copy is
        then dropped at its claim, a running one's result at its finish (both find no job)."""
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.delete(self._key(job_id), self._key(job_id, ":input"), self._key(job_id, ":done"))
        if job_ids:
            pipe.zrem(self._pending, *job_ids)
        pipe.execute()

    def progress(self, job_id: str, done: int, total: int) -> None:
        """A running job's progress, shown by GET /results while it runs (and after)."""
        self._progress(keys=[self._key(job_id)], args=[f"{done}/{total}"])

    def progress_reporter(self, job_id: str, every_s: float = 0.5) -> Callable[[int, int], None]:
        """``progress`` for a loop that may call it per step: at most one write per ``every_s``,
        and always the first and the last (done == total)."""
        last = [0.0]

        def report(done: int, total: int) -> None:
            now = time.monotonic()
            if done in (0, total) or now - last[0] >= every_s:
                last[0] = now
                self.progress(job_id, done, total)

        return report

    def finish(self, job_id: str, outcome: JobResult | ErrorInfo, worker: str = "") -> bool:
        """Record the result or the job's error, drop the input, release ``worker``'s claim and wake
        any synchronous waiter. False when the job had already finished (that outcome stays)."""
        if isinstance(outcome, ErrorInfo):
            status, field = JobStatus.FAILED, "error"
        else:
            status, field = JobStatus.DONE, "result"
        keys = [
            self._key(job_id),
            self._key(job_id, ":input"),
            self._key(job_id, ":done"),
            self._running,
            self._pending,
            self._outbox,
        ]
        args: list[str | bytes | float] = [
            job_id,
            worker,
            self._ttl_s,
            field,
            encode(outcome),
            status.value,
            time.time(),
            HANDOFF_GRACE_S,
        ]
        args.append(self._key(""))
        match cast(list[int | bytes] | int, self._finish(keys=keys, args=args)):
            case [2, bytes(ended)] if self._handoff is not None:
                self._handoff(ended.decode())  # this job, or the split request it ended
                return True
            case [_, _]:
                return True
            case _:
                return False

    def unfinished(self) -> list[str]:
        """Every job queued or running, oldest first (forgetting the ones that expired)."""
        ids = cast(list[bytes], self._unfinished(keys=[self._pending], args=[self._key("")]))
        return [job_id.decode() for job_id in ids]

    def trim_pending(self, now: float) -> int:
        """Forget the pending entries of jobs too old to exist any more (they expired unfinished)."""
        return int(self._redis.zremrangebyscore(self._pending, "-inf", now - self._ttl_s))

    def primary_changed(self) -> bool:
        """Whether the Redis server now serving differs from the one the last caller saw: a
        failover or a restart. True for exactly one caller per change."""
        run_id = str(self._redis.info("server")["run_id"])
        previous = self._redis.set(self._primary, run_id, get=True)
        return previous is not None and cast(bytes, previous).decode() != run_id

    def holders(self) -> dict[str, str]:
        """Every job in flight and the worker that claimed it."""
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._running))
        return {job.decode(): worker.decode() for job, worker in raw.items()}

    def take_back(self, job_id: str, holder: str, orphan: bool = False) -> bool:
        """Take the job from ``holder`` if it is dead (or, with ``orphan``, if the caller is the
        holder and no longer runs it) and the job unfinished, marking it queued again; True for
        exactly one caller, which must queue it again."""
        keys = [self._key(job_id), self._running, self._workers]
        return bool(self._take_back(keys=keys, args=[job_id, holder, "1" if orphan else "0"]))

    def requeued_since(self, job_ids: Sequence[str], since: float) -> set[str]:
        """The jobs of ``job_ids`` that a reaper took back (``take_back``) at ``since`` or later."""
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self._key(job_id), "requeued_at")
        stamps = cast(list[bytes | None], pipe.execute()) if job_ids else []
        return {
            job_id
            for job_id, at in zip(job_ids, stamps, strict=True)
            if at is not None and float(at) >= since
        }

    def delivered(
        self, job_id: str, ttl_s: int, idempotency_key: str | None = None, children: Sequence[str] = ()
    ) -> None:
        """A synchronous request handed the job's outcome over: keep it (and the Idempotency-Key
        that names it, and a split request's ``children``, which hold its result) at most
        ``ttl_s`` more, for a retry; never lengthens a shorter TTL."""
        pipe = self._redis.pipeline(transaction=False)
        for key in (self._key(job_id), self._key(job_id, ":done"), idempotency_key):
            if key is not None:
                pipe.expire(key, ttl_s, lt=True)
        for child in children:
            pipe.expire(self._key(child), ttl_s, lt=True)
            pipe.expire(self._key(child, ":done"), ttl_s, lt=True)
        pipe.execute()

    def forget_collection(self, collection: str) -> int:
        """Delete the finished jobs of ``collection`` (their results name its subjects and faces)
        and the Idempotency-Keys that name them; returns how many jobs. Unfinished ones stay: their
        input is deleted when they finish. A scan of every job: for compactions, not per request."""
        prefix = self._key("").encode()
        gone: set[str] = set()
        for keys in _chunks(self._redis.scan_iter(match=_glob(self._key("")) + "*", count=1000)):
            # A job's own hash: no ":input" or ":done" after its id.
            hashes = [key for key in keys if b":" not in key[len(prefix) :]]
            pipe = self._redis.pipeline(transaction=False)
            for key in hashes:
                pipe.hmget(key, "status", "collection")
            for key, (status, owner) in zip(hashes, pipe.execute(), strict=True):
                if owner == collection.encode() and status in (b"done", b"failed"):
                    gone.add(key[len(prefix) :].decode())
        if not gone:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for job_id in gone:
            pipe.delete(self._key(job_id), self._key(job_id, ":done"), self._key(job_id, ":input"))
        for keys in _chunks(self._redis.scan_iter(match=_glob(f"{self._prefix}:idem:") + "*", count=1000)):
            records = cast(list[bytes | None], self._redis.mget(keys))
            for key, record in zip(keys, records, strict=True):
                if record is not None and decode_idempotency(record).job_id in gone:
                    pipe.delete(key)
        pipe.execute()
        return len(gone)

    def erase_collection(self, collection: str) -> bool:
        """``forget_collection``, then rewrite Redis's files from the keys left: True once no
        file of this Redis server holds the deleted jobs (shared/redis_files.py)."""
        self.forget_collection(collection)
        return rewrite(self._redis)

    def state(self, job_id: str, owner: str | None = None) -> JobState:
        """The job's state; JobNotFound when it is unknown, expired or, with ``owner`` (an API key
        digest), another's: the same answer, so that ids cannot be probed. A split request's is
        gathered from its children (``_gather``)."""
        raw = cast(dict[bytes, bytes], self._redis.hgetall(self._key(job_id)))
        not_found = JobNotFound(f"no job with id {job_id!r} (unknown or expired)")
        if not raw:
            raise not_found
        state = _job_state(job_id, raw)
        if owner is not None and (state.render.owner if state.render is not None else "") != owner:
            raise not_found
        if not state.children:
            return state
        pipe = self._redis.pipeline(transaction=False)
        for child in state.children:
            pipe.hgetall(self._key(child))
        children = [
            _job_state(child, raw) if raw else None
            for child, raw in zip(state.children, pipe.execute(), strict=True)
        ]
        if state.status in FINISHED and None in children:
            raise JobNotFound(f"job {job_id!r}: a part of it expired")
        return _gather(state, children)

    def wait(self, job_id: str, timeout_s: float, owner: str | None = None) -> JobState:
        """Block until the job has finished or the timeout passes; return its latest state."""
        deadline = time.monotonic() + timeout_s
        done = self._key(job_id, ":done")
        while True:
            state = self.state(job_id, owner)
            remaining = deadline - time.monotonic()
            if state.status in FINISHED or remaining <= 0:
                return state
            # Rotating the one-token list onto itself wakes every waiter (each one's move serves
            # the next) and never empties it, so it keeps the TTL finish() gave it. Waking up at
            # least every second re-reads the state, which is the truth.
            # redis-py's types allow whole seconds only; Redis (6+) takes decimals, passed through.
            timeout = min(remaining, 1.0)
            moved = self._redis.blmove(done, done, timeout, "LEFT", "RIGHT")  # type: ignore[arg-type]
            if moved is not None:
                return self.state(job_id, owner)


def _job_state(job_id: str, raw: dict[bytes, bytes]) -> JobState:
    """A job's state as its hash holds it."""

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
        sent=b"sent" in raw,
        callback=_callback_state(raw),
        callback_url=raw[b"callback"].decode() if b"callback" in raw else None,
        progress=_progress(raw.get(b"progress")),
        children=tuple(raw[b"children"].decode().split(",")) if b"children" in raw else (),
        images=int(raw.get(b"images", b"0")),
    )


def _gather(parent: JobState, children: Sequence[JobState | None]) -> JobState:
    """A split request's state from its children's (None: expired), in request order. Its status
    is its own once it ended (FINISH ends it with its last child: failed if any child failed),
    before that running as soon as a child started. Its error is the first failed child's, its
    result the children's merged (shared/split.py); progress counts the images of the children
    that finished; worker and started are its first started child's."""
    known = [child for child in children if child is not None]
    begun = sorted((c for c in known if c.started is not None), key=lambda c: c.started or 0.0)
    status = parent.status
    if status not in FINISHED and (begun or any(c.status in FINISHED for c in known)):
        status = JobStatus.RUNNING
    error = next((c.error for c in known if c.error is not None), None)
    results = [c.result for c in known if c.result is not None]
    done = sum(c.images for c in known if c.status in FINISHED)
    return replace(
        parent,
        status=status,
        started=begun[0].started if begun else None,
        worker=begun[0].worker if begun else None,
        attempts=max((c.attempts for c in known), default=0),
        error=error if status is JobStatus.FAILED else None,
        result=merge_results(results) if status is JobStatus.DONE and results else None,
        progress=(done, parent.images),
    )


def _progress(raw: bytes | None) -> tuple[int, int] | None:
    if raw is None:
        return None
    done, total = raw.decode().split("/")
    return int(done), int(total)


def _callback_state(raw: dict[bytes, bytes]) -> CallbackState | None:
    if b"callback" not in raw:
        return None
    return CallbackState(
        status=CallbackStatus(raw.get(b"cb_status", b"pending").decode()),
        attempts=int(raw.get(b"cb_attempts", b"0")),
        last_error=raw.get(b"cb_error", b"").decode(),
    )


def collection_of(job: Job) -> str | None:
    """The collection a job works on, if any (a verify of two images has none)."""
    return None if isinstance(job, ExtractJob | VideoSegmentJob) else job.collection


def _glob(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def _chunks(keys: Iterator[bytes], size: int = 500) -> Iterator[list[bytes]]:
    chunk: list[bytes] = []
    for key in keys:
        chunk.append(key)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class WorkerRegistry:
    """Live workers: one hash, name -> Heartbeat, read with one HGETALL (and Redis's TIME)."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = f"{prefix}:workers"
        self._forget = client.register_script(FORGET)

    def now(self) -> float:
        seconds, micros = self._redis.time()
        return seconds + micros / 1_000_000

    def beat(self, info: WorkerInfo, ttl_s: float, draining: bool = False) -> bool:
        """Write the worker's entry; True when one was there already under its name."""
        beat = Heartbeat(info, self.now() + ttl_s, draining)
        return self._redis.hset(self._key, info.name, encode_heartbeat(beat)) == 0

    def remove(self, name: str) -> None:
        self._redis.hdel(self._key, name)

    def forget(self, name: str) -> bool:
        """Remove a dead worker's entry (only while it is still expired)."""
        return bool(self._forget(keys=[self._key], args=[name]))

    def snapshot(self) -> tuple[float, dict[str, Heartbeat]]:
        """Redis's time and every entry, live or expired, read together."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.time()
        pipe.hgetall(self._key)
        (seconds, micros), raw = pipe.execute()
        beats = {name.decode(): decode_heartbeat(value) for name, value in raw.items()}
        return seconds + micros / 1_000_000, beats

    def online(self) -> list[WorkerInfo]:
        """Workers with an unexpired heartbeat that take jobs (not draining), by name."""
        now, beats = self.snapshot()
        live = [beat.info for beat in beats.values() if beat.expires_at > now and not beat.draining]
        return sorted(live, key=lambda info: info.name)
