"""Start a worker pinned to one device: ``python -m worker --device cpu|cuda:N``."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import time

import redis
from celery.signals import worker_init, worker_shutting_down

from shared.contract import RecognizerInfo, WorkerInfo
from shared.gallery import open_gallery
from shared.gallery.people import open_people
from shared.jobs import JobStore, WorkerRegistry
from shared.logs import configure_logging
from shared.memory import limit_malloc_arenas
from shared.queue import (
    DELIVER_TASK,
    EXTRACT_TASK,
    create_celery,
    gather_stray_lanes,
    queue_lanes,
    resend_lane,
    waiting_jobs,
    webhook_queue,
    worker_queues,
)
from shared.redisconn import connect
from shared.settings import SettingsError, load_settings, warn_unknown_settings
from shared.videos import VideoStore
from worker.analyzer import FaceAnalyzer
from worker.heartbeat import Heartbeat
from worker.inference.files import ModelIntegrityError
from worker.inference.session import Device, DeviceUnavailable
from worker.loader import load_analyzer
from worker.people import Discovery
from worker.reaper import Reaper
from worker.recognition import Recognition
from worker.tasks import TaskContextFilter, WorkerRuntime, register_tasks
from worker.video import Identify, VideoWork

log = logging.getLogger("facerest.worker")


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
    app = create_celery(settings)

    def handoff(job_id: str) -> None:
        # The job is in the outbox already (atomically with its end): a message lost here is
        # sent by the courier's sweep after shared/webhooks.py's HANDOFF_GRACE_S instead.
        try:
            app.send_task(DELIVER_TASK, args=[job_id, 0], queue=webhook_queue(settings))
        except Exception as exc:  # kombu's and redis-py's errors alike; the job itself is done
            log.warning("job %s: its webhook hand-off failed (%s); the courier's sweep sends it", job_id, exc)

    store = JobStore(client, settings.key_prefix, settings.result_ttl_s, handoff=handoff)
    info = worker_info(name, str(device), settings.concurrency, settings.profile, analyzer)
    gallery = open_gallery(settings.gallery_url.get_secret_value(), settings.data_dir)
    people = open_people(settings.gallery_url.get_secret_value(), settings.data_dir)
    recognition = Recognition(analyzer, gallery, info.recognizer, name, store, Discovery(people))
    videos = VideoStore(client, settings.key_prefix, settings.result_ttl_s)
    identify = Identify(gallery, info.recognizer)
    video = VideoWork(analyzer, videos, store, name, settings.max_video_pixels, identify)
    runtime = WorkerRuntime(
        name, analyzer, store, settings.max_attempts, recognition=recognition, video=video
    )
    register_tasks(app, runtime)
    registry = WorkerRegistry(client, settings.key_prefix)

    lanes = queue_lanes(settings)
    consumed = worker_queues(settings)
    try:
        if moved := gather_stray_lanes(client, settings):
            log.warning(
                "moved %d jobs from lanes past queue_lanes=%d to %s", moved, settings.queue_lanes, lanes[0]
            )
    except redis.RedisError as exc:  # Redis not up yet: the next worker to start gathers them
        log.warning("could not gather jobs from lanes past queue_lanes: %s", exc)

    def requeue(job_id: str) -> None:
        # Back to the lane its owner's jobs wait in, so a re-sent job keeps its place in the turns.
        lane = resend_lane(settings, store.queue_of(job_id))
        app.send_task(EXTRACT_TASK, args=[job_id], task_id=job_id, queue=lane)

    heartbeat = Heartbeat(
        registry,
        info,
        settings.heartbeat_s,
        settings.heartbeat_ttl_s,
        Reaper(
            store,
            registry,
            requeue,
            name,
            runtime.in_flight,
            lambda: waiting_jobs(client, consumed),
            sending_s=settings.heartbeat_s,
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
                # Every lane; the transport pops the non-empty ones in turn (round robin).
                f"--queues={','.join(consumed)}",
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
