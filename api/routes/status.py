"""GET /health (API and Redis up), /ready (a worker has its models loaded) and /info.

Both /health and /ready answer 503 once this process drains (SIGTERM): the balancer stops
sending it new requests while gunicorn finishes the ones in flight.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Any

import msgspec
import redis
from flask import Blueprint, Response

from api.availability import available
from api.context import context
from api.openapi import Operation, Reply, documented
from api.render import encode
from api.schemas import HealthBody, InfoBody, InfoModels, ReadyBody
from shared.contract import DEFAULT_MAX_SIZE, DEFAULT_THRESHOLD, WorkerInfo
from shared.queue import queue_depth, queue_lanes, video_lane
from shared.settings import Backend, Settings

bp = Blueprint("status", __name__)
log = logging.getLogger("facerest.api")

# What FACEREST_*_BACKEND=auto picks on a CPU (each registry entry's cpu_backend in
# worker/inference/registry.py, measured in bench/runtimes.py); the API does not import the
# worker's packages, so /info says it again here.
AUTO_CPU = {"detector": Backend.ONNXRUNTIME, "recognizer": Backend.OPENVINO}


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
        503: Reply("No worker, Redis unreadable, or this process drains", ReadyBody, retry_after=True),
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
    try:
        workers = ctx.workers.online()
    except redis.RedisError as exc:
        # Any Redis error, not only an unreachable one: a Redis still loading its data or
        # refusing writes answers errors (ResponseError) a probe must read as "not ready", not 500.
        log.warning("readiness: Redis answered %r", exc)
        body = {"ready": False, "redis": f"error: {exc}"}
        return _unavailable(body)
    body = {"ready": bool(workers), "workers": len(workers)}
    return encode(body, False) if workers else _unavailable(body)


def _backend(settings: Settings, workers: list[WorkerInfo]) -> str:
    """The runtimes the workers run, from the shared settings: ``auto`` means ONNX Runtime for
    detectors and OpenVINO for the recognizer on a CPU, ONNX Runtime on a GPU."""
    on_gpu = bool(workers) and all(worker.device != "cpu" for worker in workers)
    chosen = {
        Backend.ONNXRUNTIME if on_gpu else AUTO_CPU.get(kind, backend) if backend is Backend.AUTO else backend
        for kind, backend in (
            ("detector", settings.detector_backend),
            ("recognizer", settings.recognizer_backend),
        )
    }
    return "+".join(sorted(str(backend) for backend in chosen))


def _ifr_models(settings: Settings, workers: list[WorkerInfo], loaded: list[dict[str, Any]]) -> InfoModels:
    """/info's models as InsightFace-REST's client reads them: the first worker's default models.

    Batch sizes and backends are the settings the workers read (one env file for all roles)."""
    first = workers[0] if workers else None
    names = {} if first is None else {model.key: model.name for model in first.models}
    on_gpu = first is not None and first.device != "cpu"
    return {
        "inference_backend": _backend(settings, workers),
        "det_name": None if first is None else names.get(first.detectors[0]),
        "rec_name": None if first is None else first.recognizer.name,
        "ga_name": names.get("genderage"),
        "mask_detector": None,
        "max_size": list(DEFAULT_MAX_SIZE),
        "det_batch_size": 1 if on_gpu else settings.batch_max_images,
        "rec_batch_size": settings.recognizer_batch(on_gpu),
        "loaded": loaded,
    }


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
        # InsightFace-REST's shape; "loaded" has each model with its license ("commercial_use"
        # says whether the license allows it).
        "models": _ifr_models(settings, workers, list(models.values())),
        "defaults": {
            "threshold": DEFAULT_THRESHOLD,
            "det_thresh": DEFAULT_THRESHOLD,
            "max_size": list(DEFAULT_MAX_SIZE),
            "return_face_data": False,
            "return_landmarks": False,
            "extract_embedding": True,
            "extract_ga": False,
            "detect_masks": False,
            "response_format": settings.response_format,
        },
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
            "max_video_bytes": settings.max_video_bytes,
            "max_video_duration_s": settings.max_video_duration_s,
            "max_video_pixels": settings.max_video_pixels,
            "max_video_frames": settings.max_video_frames,
        },
        # Whether keys are required; the keys themselves are never shown.
        "api_keys": ctx.api_keys.enabled,
        "queue_depth": queue_depth(ctx.redis, queue_lanes(settings)),
        "video_queue_depth": queue_depth(ctx.redis, (video_lane(settings),)),
        "flower_port": settings.flower_port,
    }
    return encode(body, False)
