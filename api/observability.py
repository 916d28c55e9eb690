"""Request ids, JSON access logs and Prometheus metrics for the API.

Metrics are correct under gunicorn's several processes: ``api/gunicorn_conf.py`` sets
``PROMETHEUS_MULTIPROC_DIR`` before the workers start, each process writes its samples there and
/metrics sums them. Without that variable (one process, tests) the app's own registry is used.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Iterator

import redis
from flask import Flask, Response, g, has_request_context, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from shared.jobs import WorkerRegistry
from shared.queue import queue_depth

log = logging.getLogger("facerest.api")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is logged and echoed: accept only short, plain tokens (no log or header injection).
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def request_id_of(header: str | None) -> str:
    if header and REQUEST_ID_PATTERN.match(header):
        return header
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds the current request's id to log records made while handling it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context() and "request_id" in g and not hasattr(record, "request_id"):
            record.request_id = g.request_id
        return True


class QueueCollector(Collector):
    """Queue depth and online workers, read from Redis at scrape time (the same in every process)."""

    def __init__(
        self, client: redis.Redis, queues: tuple[str, ...], workers: WorkerRegistry, video_queue: str = ""
    ) -> None:
        self._video_queue = video_queue
        self._redis = client
        self._queues = queues
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("facerest_queue_depth", "Jobs waiting in the queue (all its lanes)")
        workers = GaugeMetricFamily("facerest_workers_online", "Workers with a live heartbeat")
        videos = GaugeMetricFamily("facerest_video_queue_depth", "Video segments waiting in their lane")
        try:
            depth.add_metric([], float(queue_depth(self._redis, self._queues)))
            if self._video_queue:
                videos.add_metric([], float(queue_depth(self._redis, (self._video_queue,))))
            workers.add_metric([], float(len(self._workers.online())))
        except redis.RedisError:
            return
        yield depth
        yield workers
        if self._video_queue:
            yield videos


class ApiMetrics:
    """The API's metrics, registered on a registry of this app (no process-wide globals)."""

    def __init__(self, queue_collector: Collector) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._queue_collector = queue_collector
        self.requests = Counter(
            "facerest_http_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "facerest_http_request_duration_seconds",
            "HTTP request latency by route and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Histogram(
            "facerest_request_images",
            "Images per accepted /extract request",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.faces = Histogram(
            "facerest_request_faces",
            "Faces found per answered synchronous /extract request",
            buckets=(0, 1, 2, 5, 10, 20, 50, 100, 256, 1024),
            registry=self.registry,
        )

    def render(self) -> bytes:
        if self.multiprocess:
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        live = CollectorRegistry()
        live.register(self._queue_collector)
        return generate_latest(registry) + generate_latest(live)


def install(app: Flask, metrics: ApiMetrics) -> None:
    """Request id in, out and in the logs; one access log line and metrics sample per request."""

    @app.before_request
    def _start() -> None:
        g.request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or request_id_of(None)
        response.headers[REQUEST_ID_HEADER] = request_id
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        metrics.latency.labels(route, request.method).observe(elapsed)
        log.info(
            "%s %s %d %.1f ms",
            request.method,
            route,
            response.status_code,
            elapsed * 1000,
            extra={"request_id": request_id, "status": response.status_code},
        )
        return response
