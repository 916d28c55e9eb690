"""The one place that turns ``FACEREST_REDIS_URL`` into Redis clients and Celery's broker settings.

Two forms:
  redis://[:password@]host:port/db            one Redis server (also rediss://, unix://)
  redis+sentinel://[:password@]host:port[,host:port...]/service/db
                                              the primary that the Sentinels name ``service``;
                                              clients follow it through a failover
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379
# With backoff capped at 1 s, about 9 s of retries: longer than a failover takes (Sentinel's
# down-after time, 3 s in deploy/launcher.py, plus the vote), short enough that a command stuck
# on the dead primary gives up and the next one finds the new primary.
FAILOVER_RETRIES = 12


class FailoverConnection(SentinelManagedConnection):
    """A connection to the primary that asks the Sentinels where it is on every reconnect.

    redis-py (8.1) reconnects a dropped connection inside a command's retries without asking the
    Sentinels again, so every retry of that command went to the dead primary's address even after
    the Sentinels had named the new one, and the command failed once its retries ran out.
    """

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect_to(self.connection_pool.get_master_address())  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    password: str | None


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


def parse_sentinel(url: str) -> SentinelTarget:
    """The Sentinels, service name, database and primary's password of a sentinel URL."""
    parts = urlsplit(url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    password = unquote(credentials.partition(":")[2]) if credentials else None
    sentinels = []
    for host in hosts.split(","):
        name, colon, port = host.strip().rpartition(":")
        if not colon:
            name, port = host.strip(), ""
        if not name:
            raise ValueError(f"sentinel URL: a host is empty in {hosts!r}")
        sentinels.append((name.strip("[]"), int(port) if port else DEFAULT_SENTINEL_PORT))
    path = [part for part in parts.path.split("/") if part]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError(f"sentinel URL must end in /<service>[/<db>], got {parts.path!r}")
    return SentinelTarget(tuple(sentinels), path[0], int(path[1]) if len(path) == 2 else 0, password or None)


def connect(url: str, **options: Any) -> redis.Redis:
    """A client of the Redis primary: ``options`` are redis-py's (timeouts, health checks)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **options)
    target = parse_sentinel(url)
    # A failover takes seconds (Sentinel's down-after time plus the promotion): commands retry
    # across it, reconnecting to whichever server the Sentinels then name the primary.
    options.setdefault("retry", Retry(ExponentialBackoff(cap=1.0, base=0.1), FAILOVER_RETRIES))
    options.setdefault("retry_on_error", [redis.ConnectionError, redis.TimeoutError])
    timeouts = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=timeouts, **timeouts)  # type: ignore[no-untyped-call]
    primary = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service,
        db=target.db,
        password=target.password,
        connection_class=FailoverConnection,
        **options,
    )
    return cast(redis.Redis, primary)


def celery_broker(url: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and the transport options it needs for ``url``."""
    if not is_sentinel(url):
        return url, {}
    target = parse_sentinel(url)
    auth = f":{target.password}@" if target.password else ""
    hosts = [(f"[{host}]" if ":" in host else host, port) for host, port in target.sentinels]
    broker = ";".join(f"sentinel://{auth}{host}:{port}/{target.db}" for host, port in hosts)
    return broker, {"master_name": target.service}
