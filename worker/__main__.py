"""Start a worker pinned to one device: ``python -m worker --device cpu|cuda:N``."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time

import redis
from celery.signals import worker_ready, worker_shutting_down

from shared.contract import RecognizerInfo, WorkerInfo
from shared.jobs import JobStore, WorkerRegistry
from shared.logs import configure_logging
from shared.memory import limit_malloc_arenas
from shared.queue import create_celery
from shared.redisconn import connect
from shared.settings import SettingsError, load_settings
from worker.analyzer import FaceAnalyzer
from worker.inference.files import ModelIntegrityError
from worker.inference.session import Device, DeviceUnavailable
from worker.loader import load_analyzer
from worker.tasks import TaskContextFilter, WorkerRuntime, register_tasks

log = logging.getLogger("facerest.worker")


class Heartbeat:
    """Refreshes this worker's registry entry until stopped; the API reads it for /info, /ready."""

    def __init__(self, registry: WorkerRegistry, info: WorkerInfo, every_s: float, ttl_s: int) -> None:
        self._registry = registry
        self._info = info
        self._every_s = every_s
        self._ttl_s = ttl_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._registry.remove(self._info.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._registry.beat(self._info, self._ttl_s)
            except redis.RedisError:
                log.warning("heartbeat: Redis unreachable, retrying")
            self._stop.wait(self._every_s)


def worker_info(name: str, device: str, concurrency: int, profile: str, analyzer: FaceAnalyzer) -> WorkerInfo:
    """This worker's heartbeat: what requests may choose on it."""
    loaded = analyzer.loaded
    spec = loaded.recognizer.spec
    return WorkerInfo(
        name=name,
        device=device,
        pid=os.getpid(),
        concurrency=concurrency,
        started=time.time(),
        profile=profile,
        models=[model.to_info() for model in loaded.specs()],
        detectors=list(loaded.detectors),
        recognizer=RecognizerInfo(
            spec.key, spec.name, spec.version, spec.license, loaded.recognizer.dimension
        ),
        attributes=loaded.attribute_keys(),
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m worker", description=__doc__)
    parser.add_argument("--device", help="cpu or cuda:N (default: FACEREST_DEVICE or cpu)")
    parser.add_argument("--concurrency", type=int, help="jobs in flight (threads)")
    parser.add_argument("--name", help="worker name (default facerest-<device>-<pid>@<host>)")
    parser.add_argument("--loglevel", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    limit_malloc_arenas()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    overrides = {k: v for k, v in {"device": args.device, "concurrency": args.concurrency}.items() if v}
    try:
        settings = load_settings(**overrides)
        configure_logging(args.loglevel, settings.log_format, [TaskContextFilter()])
        device = Device.parse(settings.device)
        # Models load once, here, before the pool starts; the thread pool never forks.
        analyzer = load_analyzer(settings, device)
    except (SettingsError, DeviceUnavailable, ModelIntegrityError) as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    name = args.name or f"facerest-{str(device).replace(':', '')}-{os.getpid()}@{socket.gethostname()}"
    # Bounded socket waits; redis-py reconnects by itself when Redis comes back after a restart.
    client = connect(settings.redis_url, socket_connect_timeout=5, socket_timeout=15)
    store = JobStore(client, settings.key_prefix, settings.result_ttl_s)
    runtime = WorkerRuntime(name, analyzer, store, settings.max_attempts)
    app = create_celery(settings)
    register_tasks(app, runtime)
    heartbeat = Heartbeat(
        WorkerRegistry(client, settings.key_prefix),
        worker_info(name, str(device), settings.concurrency, settings.profile, analyzer),
        settings.heartbeat_s,
        settings.heartbeat_ttl_s,
    )
    worker_ready.connect(lambda **_: heartbeat.start(), weak=False)
    worker_shutting_down.connect(lambda **_: heartbeat.stop(), weak=False)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={settings.concurrency}",
            f"--hostname={name}",
            f"--queues={settings.queue}",
            f"--loglevel={args.loglevel}",
            "--task-events",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
