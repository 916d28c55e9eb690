"""Container health check: exit 0 when a worker on this host has a live heartbeat in Redis.

``python -m worker.healthcheck``. The heartbeat is written only after the models loaded and is
removed when shutdown starts, so this is also the worker's readiness.
"""

from __future__ import annotations

import socket
import sys

import redis

from shared.jobs import WorkerRegistry
from shared.redisconn import connect
from shared.settings import SettingsError, load_settings


def main() -> int:
    try:
        settings = load_settings()
        client = connect(settings.redis_url, socket_timeout=3, socket_connect_timeout=3)
        workers = WorkerRegistry(client, settings.key_prefix).online()
    except (SettingsError, redis.RedisError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    host = socket.gethostname()
    mine = [worker.name for worker in workers if worker.name.endswith(f"@{host}")]
    if not mine:
        print(f"unhealthy: no worker heartbeat from host {host}", file=sys.stderr)
        return 1
    print(f"healthy: {', '.join(mine)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
