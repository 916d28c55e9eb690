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
from celery.signals import worker_init, worker_shutting_down

from shared.contract import RecognizerInfo, WorkerInfo
from shared.gallery import open_gallery
from shared.jobs import JobStore, Reaper, WorkerRegistry
from shared.logs import configure_logging
from shared.memory import limit_malloc_arenas
from shared.queue import EXTRACT_TASK, create_celery, waiting_jobs
from shared.redisconn import connect
from shared.settings import SettingsError, load_settings, warn_unknown_settings
from worker.analyzer import FaceAnalyzer
from worker.inference.files import ModelIntegrityError
from worker.inference.session import Device, DeviceUnavailable
from worker.loader import load_analyzer
from worker.recognition import Recognition
from worker.tasks import TaskContextFilter, WorkerRuntime, register_tasks

log = logging.getLogger("facerest.worker")


class Heartbeat:
    """Refreshes this worker's registry entry until stopped, and reaps dead workers' jobs.

    The API reads the entry for /ready, /info and its model checks; every other worker reads it to
    decide whether this one is alive. After each beat the reaper re-queues the jobs of workers whose
    heartbeat expired, so a killed worker's jobs run again within about ``ttl_s + every_s``.
    """

    def __init__(
        self, registry: WorkerRegistry, info: WorkerInfo, every_s: float, ttl_s: int, reaper: Reaper
    ) -> None:
        self._registry = registry
        self._info = info
        self._every_s = every_s
        self._ttl_s = ttl_s
        self._reaper = reaper
        self._draining = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        # The first beat is written before any job can be claimed: a claim by a worker without a
        # heartbeat would look dead to the reapers. An entry already under this name was left by a
        # predecessor that died (a container restarted in place keeps its name and its pid), so no
        # reaper will forget it: the jobs it had taken from the queue unclaimed are sent again here.
        if self._beat():
            self._resend_lost()
        self._thread.start()

    def drain(self) -> None:
        """Shutdown began: leave /ready and /info at once, but stay alive for the jobs still running."""
        self._draining.set()
        self._beat()

    def stop(self) -> None:
        """The worker has exited its pool: every job it held is finished or handed back."""
        self._stop.set()
        self._registry.remove(self._info.name)

    def _beat(self) -> bool:
        """Write the entry; True when it replaced one under this name."""
        try:
            return self._registry.beat(self._info, self._ttl_s, draining=self._draining.is_set())
        except redis.RedisError:
            log.warning("heartbeat: Redis unreachable, retrying")
            return False

    def _resend_lost(self) -> None:
        try:
            for job_id in self._reaper.resend_lost():
                log.warning("job %s: taken from the queue by a worker that died; queued again", job_id)
        except redis.RedisError:
            log.warning("reaper: Redis unreachable, retrying")

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._beat()
            if self._draining.is_set():
                continue
            try:
                if resent := self._reaper.recover():
                    log.warning("Redis failover or restart: %d unfinished jobs sent again", len(resent))
                for job_id in self._reaper.reap():
                    log.warning("job %s: its worker died or could not finish it; queued again", job_id)
            except redis.RedisError:
                log.warning("reaper: Redis unreachable, retrying")


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
        warn_unknown_settings(log, os.environ)
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
    info = worker_info(name, str(device), settings.concurrency, settings.profile, analyzer)
    gallery = open_gallery(settings.gallery_url.get_secret_value(), settings.data_dir)
    recognition = Recognition(analyzer, gallery, info.recognizer, name)
    runtime = WorkerRuntime(name, analyzer, store, settings.max_attempts, recognition=recognition)
    app = create_celery(settings)
    register_tasks(app, runtime)
    registry = WorkerRegistry(client, settings.key_prefix)

    def requeue(job_id: str) -> None:
        app.send_task(EXTRACT_TASK, args=[job_id], task_id=job_id, queue=settings.queue)

    heartbeat = Heartbeat(
        registry,
        info,
        settings.heartbeat_s,
        settings.heartbeat_ttl_s,
        Reaper(
            store, registry, requeue, name, runtime.in_flight, lambda: waiting_jobs(client, settings.queue)
        ),
    )
    worker_init.connect(lambda **_: heartbeat.start(), weak=False)
    worker_shutting_down.connect(lambda **_: heartbeat.drain(), weak=False)
    try:
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
    finally:
        heartbeat.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
