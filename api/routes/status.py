"""GET /health (API and Redis up), /ready (a worker has its models loaded) and /info.

Both /health and /ready answer 503 once this process drains (SIGTERM): the balancer stops
sending it new requests while gunicorn finishes the ones in flight.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import msgspec
import redis
from flask import Blueprint, Response

from api.availability import available
from api.context import context
from api.openapi import Operation, Reply, documented
from api.render import encode
from api.schemas import HealthBody, InfoBody, ReadyBody

bp = Blueprint("status", __name__)


HEALTH_DOC = Operation(
    summary="API and Redis are up",
    open=True,
    replies={
        200: Reply("Healthy", HealthBody),
        503: Reply("Redis down, or this process drains", HealthBody, retry_after=True),
    },
)
READY_DOC = Operation(
    summary="At least one worker has its models loaded",
    open=True,
    replies={
        200: Reply("Ready", ReadyBody),
        503: Reply("No worker, or this process drains", ReadyBody, retry_after=True),
    },
)
INFO_DOC = Operation(
    summary="Version, workers, models, licenses, limits",
    replies={200: Reply("Service information", InfoBody)},
)


def _unavailable(body: HealthBody | ReadyBody) -> Response:
    """A 503 of /health or /ready: with Retry-After, like every 503 of the API."""
    response = encode(body, False, status=503)
    response.headers["Retry-After"] = str(context().settings.retry_after_s)
    return response


@bp.get("/health")
@documented(HEALTH_DOC)
def health() -> Response:
    ctx = context()
    body: HealthBody
    if ctx.lifecycle.draining:
        body = {"status": "draining"}
        return _unavailable(body)
    try:
        ctx.redis.ping()
    except redis.RedisError as exc:
        body = {"status": "error", "redis": f"unreachable: {exc}"}
        return _unavailable(body)
    body = {"status": "ok", "redis": "ok"}
    return encode(body, False)


@bp.get("/ready")
@documented(READY_DOC)
def ready() -> Response:
    ctx = context()
    body: ReadyBody
    if ctx.lifecycle.draining:
        body = {"ready": False, "draining": True}
        return _unavailable(body)
    workers = ctx.workers.online()
    body = {"ready": bool(workers), "workers": len(workers)}
    return encode(body, False) if workers else _unavailable(body)


@bp.get("/info")
@documented(INFO_DOC)
def info() -> Response:
    ctx = context()
    workers = ctx.workers.online()
    models: dict[str, dict[str, Any]] = {}
    for worker in workers:
        for model in worker.models:
            models.setdefault(model.sha256, msgspec.to_builtins(model))
    settings = ctx.settings
    serving = available(workers)
    body: InfoBody = {
        "name": "facerest",
        "version": version("facerest"),
        "api_versions": ["1", "2"],
        "workers": msgspec.to_builtins(workers),
        # Each model with its license; "commercial_use" says whether the license allows it.
        "models": list(models.values()),
        # What every online worker can serve; each recognizer's vectors are comparable only
        # with vectors of the same recognizer (name and version).
        "detectors": serving.detectors,
        "attributes": serving.attributes,
        "recognizers": msgspec.to_builtins(serving.recognizers),
        "limits": {
            "max_body_bytes": settings.max_body_bytes,
            "max_images": settings.max_images,
            "max_image_bytes": settings.max_image_bytes,
            "max_image_pixels": settings.max_image_pixels,
            # The workers' setting, when they share the API's environment (one env file).
            "max_detect_pixels": settings.max_detect_pixels,
            "max_faces": settings.max_faces,
            "sync_timeout_s": settings.sync_timeout_s,
            "result_ttl_s": settings.result_ttl_s,
            "max_queue_depth": settings.max_queue_depth,
            "url_timeout_s": settings.url_timeout_s,
            "url_max_redirects": settings.url_max_redirects,
        },
        # Whether keys are required; the keys themselves are never shown.
        "api_keys": ctx.api_keys.enabled,
        "queue_depth": int(ctx.redis.llen(settings.queue)),
    }
    return encode(body, False)
