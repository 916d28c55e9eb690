"""The worker's heartbeat thread: its registry entry, refreshed until shutdown, and the reaper run
after each beat."""

from __future__ import annotations

import logging
import threading

import redis

from shared.contract import WorkerInfo
from shared.jobs import WorkerRegistry
from worker.reaper import Reaper

# The worker's own logger: these lines read as the worker's, as they did from worker/__main__.py.
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
