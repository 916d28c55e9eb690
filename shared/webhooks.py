"""Webhooks: a finished job's envelope POSTed to its callback URL, signed, retried with backoff.

Signature (docs/webhooks.md): ``X-Facerest-Signature: sha256=HEX``, HEX the HMAC-SHA256 of
``TIMESTAMP.BODY`` (the ``X-Facerest-Timestamp`` header's Unix seconds, a dot, the raw body) with
the key's secret. Signing the timestamp with the body lets a receiver refuse a replayed delivery.

Secrets: one setting, FACEREST_WEBHOOK_SECRET. With API keys on, each key signs with its own
secret, derived from it and the key's digest (``key_secret``), so a receiver of one key can
neither forge nor verify another key's deliveries, and no per-key secret is stored anywhere;
GET /webhooks/secret tells a key its own. With keys off every delivery is signed with the
setting itself.

The hand-off (shared/jobs.py FINISH): the job's end and its entry in the outbox (``{p}:webhooks``,
a sorted set: job id -> when it is due, in Redis's clock) are one atomic step, so a callback
cannot be lost between them. The worker then sends a deliver message to the courier's queue
(shared/queue.py webhook_queue); the courier (api/courier.py) also sweeps the outbox for entries
overdue (a worker that died before sending, a retry that came due) and sends their messages.
Each message names the attempt it is for: the first to claim that attempt runs it, and a
duplicate message (a sweep and a worker's hand-off of the same entry) is dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import cast

import redis
import urllib3

from shared.errors import UrlFetchFailed, UrlRefused
from shared.fetch import UrlPolicy, describe_failure, host_header, open_pool

SIGNATURE_HEADER = "X-Facerest-Signature"
TIMESTAMP_HEADER = "X-Facerest-Timestamp"
JOB_HEADER = "X-Facerest-Job"
SIGNATURE_PREFIX = "sha256="
# Derivation label of per-key secrets: a key's secret is never the service secret itself.
KEY_SECRET_LABEL = b"facerest webhook secret\0"
# How long after the hand-off the sweep takes an entry the worker's message should have claimed;
# and how long a claimed attempt may run before the sweep takes it again (the courier died).
HANDOFF_GRACE_S = 10.0
# Outbox entries a sweep sends at most (more wait for the next sweep).
SWEEP_BATCH = 100
MAX_ERROR_CHARS = 300


class CallbackStatus(StrEnum):
    PENDING = "pending"  # the job has not ended, or its first attempt has not run yet
    RETRYING = "retrying"  # an attempt failed; another comes after the backoff
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # refused (SSRF), the retry time ran out, or the job's state expired


def key_secret(service_secret: str, owner: str) -> str:
    """The secret deliveries of ``owner`` (an API key's SHA-256 digest, hex; "" with keys off) are
    signed with: the service secret itself for "", else an HMAC of the owner by it."""
    if not owner:
        return service_secret
    return hmac.new(service_secret.encode(), KEY_SECRET_LABEL + owner.encode(), hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Facerest-Signature value of ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def retry_delay(attempts: int, base_s: float, max_s: float) -> float:
    """Seconds from the ``attempts``-th failed attempt to the next: doubling, at most ``max_s``."""
    return float(min(base_s * 2 ** min(attempts - 1, 62), max_s))


class DeliveryFailed(Exception):
    """An attempt that did not deliver; ``final``: retrying cannot help (the URL is refused)."""

    def __init__(self, reason: str, final: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason[:MAX_ERROR_CHARS]
        self.final = final


def post(policy: UrlPolicy, url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST ``body`` to ``url`` under the SSRF ``policy`` (checked now, at delivery: the address
    connected to is the one checked); the receiver's 2xx status, or DeliveryFailed. Redirects are
    not followed: a receiver that moved answers 3xx, a failed attempt."""
    try:
        hop = policy.check(url)
    except UrlRefused as exc:
        raise DeliveryFailed(exc.message, final=True) from None
    except UrlFetchFailed as exc:  # DNS: may well answer next time
        raise DeliveryFailed(exc.message) from None
    pool = open_pool(hop, urllib3.Timeout(connect=timeout_s, read=timeout_s))
    sent = urllib3.HTTPHeaderDict({"User-Agent": "facerest-webhook", "Content-Type": "application/json"})
    sent.update(headers)
    sent["Host"] = host_header(hop)
    try:
        response = pool.urlopen(
            "POST", hop.target, body=body, headers=sent, redirect=False, retries=False, assert_same_host=False
        )
    except urllib3.exceptions.HTTPError as exc:
        raise DeliveryFailed(
            describe_failure(
                exc, timeout_s, peer="receiver", timeout_setting="webhook_timeout_s", action="delivery"
            )
        ) from None
    finally:
        pool.close()
    if not 200 <= response.status < 300:
        raise DeliveryFailed(f"the receiver answered HTTP {response.status}")
    return response.status


# Redis's clock inside a script.
_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"

# KEYS: job hash, outbox. ARGV: job id, the attempts the message was sent after, lease seconds.
# Takes the next attempt unless another message took it, or the delivery is over. -> attempt | 0
CLAIM = (
    _NOW
    + """
local status = redis.call('HGET', KEYS[1], 'cb_status')
if status ~= 'pending' and status ~= 'retrying' then
  if status == false then redis.call('ZREM', KEYS[2], ARGV[1]) end
  return 0
end
if tonumber(redis.call('HGET', KEYS[1], 'cb_attempts') or '0') ~= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'cb_attempts', 1)
"""
)

# KEYS: outbox. ARGV: lease seconds, batch, the job key prefix ("{p}:job:"). The due entries,
# each leased (not due again for the lease) -> {id, attempts, id, attempts, ...}
TAKE_DUE = (
    _NOW
    + """
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
  local job = redis.call('HMGET', ARGV[3] .. id, 'cb_status', 'cb_attempts')
  if job[1] == 'pending' or job[1] == 'retrying' then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), id)
    table.insert(out, id)
    table.insert(out, job[2] or '0')
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""
)

# KEYS: job hash, outbox. ARGV: job id, status, error, seconds until the next attempt ('' none).
# Only an existing job's state is written: an expired one is not brought back as a bare hash.
RECORD = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) return 0 end
redis.call('HSET', KEYS[1], 'cb_status', ARGV[2], 'cb_error', ARGV[3])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
end
return 1
"""
)


@dataclass(frozen=True, slots=True)
class Due:
    """An outbox entry to send a deliver message for: its job and the attempts made so far."""

    job_id: str
    attempts: int


class Outbox:
    """The courier's view of the outbox and of the delivery state in each job's hash."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self.key = outbox_key(prefix)
        self._claim = client.register_script(CLAIM)
        self._take_due = client.register_script(TAKE_DUE)
        self._record = client.register_script(RECORD)

    def _job(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def claim(self, job_id: str, attempts: int, lease_s: float) -> int:
        """Take attempt ``attempts + 1``; its number, or 0 when another message took it or the
        delivery is over."""
        return int(
            cast(int, self._claim(keys=[self._job(job_id), self.key], args=[job_id, attempts, lease_s]))
        )

    def take_due(self, lease_s: float, batch: int = SWEEP_BATCH) -> list[Due]:
        raw = cast(list[bytes], self._take_due(keys=[self.key], args=[lease_s, batch, self._job("")]))
        return [Due(raw[i].decode(), int(raw[i + 1])) for i in range(0, len(raw), 2)]

    def record(
        self, job_id: str, status: CallbackStatus, error: str = "", retry_in_s: float | None = None
    ) -> None:
        args = [job_id, status.value, error[:MAX_ERROR_CHARS], "" if retry_in_s is None else retry_in_s]
        self._record(keys=[self._job(job_id), self.key], args=args)

    def due_at(self, job_id: str) -> float | None:
        """When the entry is due next (Redis's clock), None once it left the outbox."""
        score = self._redis.zscore(self.key, job_id)
        return None if score is None else float(score)


def outbox_key(prefix: str) -> str:
    return f"{prefix}:webhooks"


def courier_name(pid: int, host: str) -> str:
    """A courier's name (api/courier.py): its Celery hostname and the name its sweeps beat under."""
    return f"facerest-courier-{pid}@{host}"


def courier_beat_key(prefix: str, name: str) -> str:
    """The liveness key of courier ``name`` (a glob pattern in its place matches several)."""
    return f"{prefix}:courier:{name}"


def signed_headers(secret: str, job_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers of one delivery of ``body``: its timestamp, signature and job id."""
    timestamp = int(time.time() if now is None else now)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        JOB_HEADER: job_id,
    }
