"""The courier: delivers webhooks, ``python -m api.courier``. A Celery worker on the webhook queue
(shared/queue.py webhook_queue) that loads no model, so a slow or dead receiver never holds a
worker, and one light process serves every API and worker of a deployment (more may run).

It lives with the API because what it sends is the API's answer: a job's envelope as GET
/results renders it (api/render.py job_state_body). Protocol, signing and the outbox:
shared/webhooks.py. No secret, header or callback URL is ever logged (a URL may carry a token).
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass

import redis
from celery import Celery
from celery.signals import worker_init, worker_shutting_down

from api.render import job_state_body, to_json
from shared.errors import JobNotFound
from shared.fetch import UrlPolicy
from shared.jobs import JobStore
from shared.logs import configure_logging
from shared.queue import DELIVER_TASK, create_celery, webhook_queue
from shared.redisconn import connect
from shared.settings import Settings, SettingsError, load_settings, warn_unknown_settings
from shared.webhooks import (
    HANDOFF_GRACE_S,
    CallbackStatus,
    DeliveryFailed,
    Outbox,
    courier_beat_key,
    courier_name,
    key_secret,
    post,
    retry_delay,
    signed_headers,
)

log = logging.getLogger("facerest.courier")

DEFAULT_CONCURRENCY = 4
# The sweep's pace: often enough for the shortest backoff, at most once a second.
SWEEP_MIN_S, SWEEP_MAX_S = 0.05, 1.0
# The courier's liveness key ({p}:courier:<name>) lives this many sweeps.
BEAT_SWEEPS = 10


@dataclass(frozen=True, slots=True)
class Courier:
    """One delivery attempt at a time per thread; shared by the pool's threads."""

    settings: Settings
    store: JobStore
    outbox: Outbox
    policy: UrlPolicy

    @property
    def lease_s(self) -> float:
        """How long a claimed attempt keeps its outbox entry from the sweep."""
        return self.settings.webhook_timeout_s + HANDOFF_GRACE_S

    def deliver(self, job_id: str, attempts: int) -> CallbackStatus | None:
        """Run attempt ``attempts + 1`` of the job's callback, unless another message took it;
        the outcome (a CallbackStatus), None when this message was dropped."""
        attempt = self.outbox.claim(job_id, attempts, self.lease_s)
        if not attempt:
            return None
        ids = {"job_id": job_id}
        try:
            state = self.store.state(job_id)
        except JobNotFound:
            self.outbox.record(job_id, CallbackStatus.FAILED, "the job expired before its delivery")
            return CallbackStatus.FAILED
        if state.callback_url is None or state.render is None:  # every job with a callback has both
            self.outbox.record(job_id, CallbackStatus.FAILED, "the job has no callback URL")
            return CallbackStatus.FAILED
        body = to_json(job_state_body(state))
        secret = key_secret(self.settings.webhook_secret.get_secret_value(), state.render.owner)
        settings = self.settings
        try:
            status = post(
                self.policy,
                state.callback_url,
                body,
                signed_headers(secret, job_id, body),
                settings.webhook_timeout_s,
            )
        except DeliveryFailed as exc:
            delay = retry_delay(attempt, settings.webhook_backoff_s, settings.webhook_backoff_max_s)
            ended = state.finished or time.time()
            if exc.final or time.time() + delay > ended + settings.webhook_retry_for_s:
                why = "" if exc.final else f"; gave up after {attempt} attempts (webhook_retry_for_s)"
                self.outbox.record(job_id, CallbackStatus.FAILED, exc.reason + why)
                log.warning(
                    "job %s: webhook failed, attempt %d: %s%s", job_id, attempt, exc.reason, why, extra=ids
                )
                return CallbackStatus.FAILED
            self.outbox.record(job_id, CallbackStatus.RETRYING, exc.reason, retry_in_s=delay)
            log.info(
                "job %s: webhook attempt %d failed (%s); next in %.1f s",
                job_id,
                attempt,
                exc.reason,
                delay,
                extra=ids,
            )
            return CallbackStatus.RETRYING
        self.outbox.record(job_id, CallbackStatus.DELIVERED)
        log.info("job %s: webhook delivered, attempt %d (HTTP %d)", job_id, attempt, status, extra=ids)
        return CallbackStatus.DELIVERED


class Sweeper:
    """Sends a deliver message for each outbox entry that came due: a retry after its backoff, or
    a hand-off whose message never came (the worker died after the job ended)."""

    def __init__(self, courier: Courier, app: Celery, client: redis.Redis, name: str) -> None:
        self._courier = courier
        self._app = app
        self._redis = client
        self._name = name
        settings = courier.settings
        self._queue = webhook_queue(settings)
        self._every_s = max(SWEEP_MIN_S, min(SWEEP_MAX_S, settings.webhook_backoff_s / 2))
        self._beat_key = courier_beat_key(settings.key_prefix, name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhook-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sweep(self) -> int:
        """Send the due entries' messages; how many."""
        due = self._courier.outbox.take_due(self._courier.lease_s)
        for entry in due:
            self._app.send_task(DELIVER_TASK, args=[entry.job_id, entry.attempts], queue=self._queue)
        return len(due)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            try:
                self.sweep()
                self._redis.set(self._beat_key, os.getpid(), px=round(self._every_s * BEAT_SWEEPS * 1000))
            except Exception as exc:  # Redis away for a moment: the next sweep tries again
                log.warning("webhook sweep failed: %s", exc)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m api.courier", description=__doc__)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="deliveries at once")
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 0 if a courier on this host swept lately (a container's health check)",
    )
    return parser.parse_args(argv)


def courier_name_pattern() -> str:
    """The names of this host's couriers, as a glob."""
    return courier_name(0, socket.gethostname()).replace("-0@", "-*@")


def check(settings: Settings) -> int:
    """0 when a courier of this host swept within the last BEAT_SWEEPS sweeps, else 1."""
    client = connect(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    pattern = courier_beat_key(settings.key_prefix, courier_name_pattern())
    try:
        return 0 if next(client.scan_iter(match=pattern, count=1000), None) is not None else 1
    except redis.RedisError:
        return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"courier: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return check(settings)
    configure_logging(args.loglevel, settings.log_format)
    warn_unknown_settings(log, os.environ)
    if not settings.webhook_secret.get_secret_value():
        # Not an error: jobs then carry no callbacks (the API refuses them), so there is no work.
        log.warning("FACEREST_WEBHOOK_SECRET is not set: webhooks are off, the courier idles")
    name = courier_name(os.getpid(), socket.gethostname())
    client = connect(settings.redis_url, socket_connect_timeout=5, socket_timeout=15)
    courier = Courier(
        settings,
        JobStore(client, settings.key_prefix, settings.result_ttl_s),
        Outbox(client, settings.key_prefix),
        UrlPolicy(settings.webhook_allow_list, setting="FACEREST_WEBHOOK_ALLOW"),
    )
    app = create_celery(settings)

    @app.task(name=DELIVER_TASK)
    def deliver(job_id: str, attempts: int) -> None:
        courier.deliver(job_id, attempts)

    sweeper = Sweeper(courier, app, client, name)
    worker_init.connect(lambda **_: sweeper.start(), weak=False)
    worker_shutting_down.connect(lambda **_: sweeper.stop(), weak=False)
    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={args.concurrency}",
            f"--hostname={name}",
            f"--queues={webhook_queue(settings)}",
            f"--loglevel={args.loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
    sweeper.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
