"""``make run``: Redis, one worker, the API, the webhook courier and Flower on this machine;
Ctrl-C stops them all.

    python -m deploy.run

Environment: REDIS_PORT (6379), API_PORT (18081), FLOWER_PORT (5555), FACEREST_COMPAT_PORT (18082:
the drop-in server for DeepStack and CompreFace clients, docs/integrations.md; 0: none), API_HOST
and FLOWER_HOST (127.0.0.1: the addresses they listen on, the drop-in server's too; 0.0.0.0 for
every interface), API_PROCESSES (2),
API_THREADS (16), FACEREST_DEVICE (cpu), REDIS_DIR (var/redis); FACEREST_REDIS_URL names a Redis
to use instead of the one on REDIS_PORT. A Redis that already answers on REDIS_PORT is used as it
is; otherwise one starts there with its append-only file in REDIS_DIR, on 127.0.0.1. Flower asks
for basic auth: FACEREST_FLOWER_AUTH (user:password), or, while it listens on loopback, a
password made up at start and written to var/flower-password (mode 600); beyond loopback it
needs the setting. A process that exits before every one is up stops them all (a start-up
failure: its output says why); one that exits later (a crash, an out-of-memory kill) is started
again after a back-off, as ``make cluster`` does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from deploy.launcher import ROOT, Stack, child_env, is_loopback, redis_answers, serve
from shared.settings import Settings

LOOPBACK = "127.0.0.1"
FLOWER_PASSWORD = ROOT / "var" / "flower-password"
COMPAT_PORT = Settings.model_fields["compat_port"].default


def main() -> int:
    env = os.environ
    redis_port = int(env.get("REDIS_PORT", "6379"))
    api_port = int(env.get("API_PORT", "18081"))
    flower_port = int(env.get("FLOWER_PORT", "5555"))
    compat_port = int(env.get("FACEREST_COMPAT_PORT", str(COMPAT_PORT)))
    api_host, flower_host = env.get("API_HOST", LOOPBACK), env.get("FLOWER_HOST", LOOPBACK)
    system = Stack(child_env(), logs=None, label="run", stop_timeout_s=60)
    if not is_loopback(flower_host) and not system.env.get("FACEREST_FLOWER_AUTH"):
        # Said before anything starts (start_flower would refuse too, after the others started).
        print(
            f"run: Flower would listen on {flower_host}, beyond loopback: set FACEREST_FLOWER_AUTH="
            "user:password (its basic auth) first",
            file=sys.stderr,
        )
        return 2
    given_url = env.get("FACEREST_REDIS_URL")
    system.redis_url = given_url or f"redis://127.0.0.1:{redis_port}/0"

    def start() -> None:
        if given_url or redis_answers(system.redis_url):
            print(f"run: using the Redis at {system.redis_url}", flush=True)
        else:
            redis_dir = Path(env.get("REDIS_DIR", ROOT / "var" / "redis"))
            redis_dir.mkdir(parents=True, exist_ok=True)
            system.start_redis(redis_port, redis_dir, loglevel="warning")
        system.start_worker(env.get("FACEREST_DEVICE", "cpu"), wait=False)
        # api/gunicorn_conf.py: gthread, graceful_timeout > sync timeout, /ready false while
        # draining, shared Prometheus metrics, the malloc-arena cap (shared/memory.py).
        processes, threads = int(env.get("API_PROCESSES", "2")), int(env.get("API_THREADS", "16"))
        # The page links to Flower on the port it learns from /info.
        flower = {"FACEREST_FLOWER_PORT": str(flower_port)}
        system.start_api(
            api_port, host=api_host, processes=processes, threads=threads, extra_env=flower, wait=False
        )
        if compat_port:
            system.start_compat(compat_port, host=api_host, wait=False)
        system.start_courier(wait=False)  # webhooks (docs/webhooks.md); idles without a secret
        system.start_flower(flower_port, host=flower_host, wait=False)
        login = "FACEREST_FLOWER_AUTH"
        if not system.env.get("FACEREST_FLOWER_AUTH"):
            system.save_flower_password(FLOWER_PASSWORD)
            login = f"user:password in {FLOWER_PASSWORD.relative_to(ROOT)}"
        dropin = f"DeepStack/CompreFace http://{api_host}:{compat_port}, " if compat_port else ""
        print(
            f"facerest: API http://{api_host}:{api_port} (docs /docs), {dropin}"
            f"Flower http://{flower_host}:{flower_port} ({login}); Ctrl-C stops",
            flush=True,
        )

    return serve(system, start, supervise=True)


if __name__ == "__main__":
    sys.exit(main())
