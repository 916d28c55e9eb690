"""POST /extract: validate, store the images once in Redis, queue a job, wait or return 202."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import orjson
from flask import Blueprint, Response, g, request

from api.availability import check_request
from api.context import ApiContext, context
from api.openapi import Operation, Reply, documented
from api.render import encode, render, request_failure, wants_msgpack
from api.schemas import ErrorDetail, ExtractRequest, ExtractV1, ExtractV2, JobAccepted
from shared.contract import ErrorInfo, ExtractJob, ExtractResult, RenderSettings
from shared.errors import (
    FaceRestError,
    InvalidField,
    InvalidRequest,
    LimitExceeded,
    Overloaded,
    ResultTimeout,
    from_info,
)
from shared.images import decode_base64, probe
from shared.queue import EXTRACT_TASK

bp = Blueprint("extract", __name__)

URL_FETCH_THREADS = 8  # URLs of one request fetched at once
# With Sentinel: how long a request waits for a Redis replica to hold its new job.
REPLICA_WAIT_MS = 1000
log = logging.getLogger("facerest.api")


def _json_body() -> Any:
    try:
        return orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc


def _check_queue(ctx: ApiContext) -> None:
    """Refuse new work at once while the queue is full, instead of letting requests pile up."""
    depth = int(ctx.redis.llen(ctx.settings.queue))
    if depth >= ctx.settings.max_queue_depth:
        raise Overloaded(
            f"{depth} jobs queued, max_queue_depth={ctx.settings.max_queue_depth}; "
            f"retry in {ctx.settings.retry_after_s} s",
            ctx.settings.retry_after_s,
        )


def _fetch(ctx: ApiContext, url: str) -> bytes:
    data = ctx.fetcher.fetch(url)
    probe(data, ctx.settings.max_image_pixels)
    return data


def _read_images(ctx: ApiContext, req: ExtractRequest) -> tuple[list[bytes], dict[int, ErrorInfo]]:
    """Decode base64, fetch URLs and check headers: the accepted images for the worker, and the
    refused ones' errors by request position (kept by the API, merged when it answers)."""
    settings = ctx.settings
    images: list[bytes] = []
    errors: dict[int, ErrorInfo] = {}

    def read(index: int, where: str, data: Callable[[], bytes]) -> None:
        try:
            images.append(data())
        except FaceRestError as exc:
            errors[index] = ErrorInfo(exc.code, f"{where}: {exc.message}")

    def from_base64(text: str) -> bytes:
        data = decode_base64(text, settings.max_image_bytes)
        probe(data, settings.max_image_pixels)
        return data

    for index, text in enumerate(req.images.data):
        read(index, f"images.data[{index}]", partial(from_base64, text))
    if req.images.urls:
        with ThreadPoolExecutor(min(URL_FETCH_THREADS, len(req.images.urls))) as pool:
            futures = [pool.submit(_fetch, ctx, url) for url in req.images.urls]
            for offset, (url, future) in enumerate(zip(req.images.urls, futures, strict=True)):
                read(len(req.images.data) + offset, f"images.urls[{offset}] {url!r}", future.result)
    return images, errors


def _replicate(ctx: ApiContext, job_id: str) -> None:
    """With Sentinel, answer only once a replica holds the job: a failover then cannot lose a
    job whose 200 or 202 was sent. Without a replica in time the answer goes out anyway."""
    acked = ctx.store.replicate(job_id, 1, REPLICA_WAIT_MS)
    if acked < 1:
        log.warning("job %s: no Redis replica acknowledged it within %d ms", job_id, REPLICA_WAIT_MS)


def _faces(result: ExtractResult) -> int:
    return sum(len(image.faces) for image in result.images)


EXTRACT_DOC = Operation(
    summary="Detect faces and extract embeddings",
    request=ExtractRequest,
    replies={
        200: Reply(
            "api_ver 1: a list of faces per image; api_ver 2: ExtractV2. MessagePack when Accept is "
            "application/x-msgpack.",
            ExtractV1 | ExtractV2,
            msgpack=True,
        ),
        202: Reply('Queued ("async": true); poll status_url', JobAccepted, msgpack=True),
        400: Reply("Malformed JSON or request; model_not_loaded: see 'available'", ErrorDetail),
        413: Reply("A size limit was exceeded", ErrorDetail),
        422: Reply("Invalid field, image or image URL", ErrorDetail),
        500: Reply("The job failed in the worker (crashed it max_attempts times)", ErrorDetail),
        503: Reply(
            "Too many jobs queued (max_queue_depth): retry after Retry-After seconds",
            ErrorDetail,
            retry_after=True,
        ),
        504: Reply("No result within the synchronous timeout; the body has the job id", ErrorDetail),
    },
)


@bp.post("/extract")
@documented(EXTRACT_DOC)
def extract() -> Response:
    started = time.perf_counter()
    ctx = context()
    _check_queue(ctx)
    req = ExtractRequest.model_validate(_json_body())
    count = req.images.count
    if count == 0:
        raise InvalidRequest("images.data is empty: send at least one base64 image (or images.urls)")
    if count > ctx.settings.max_images:
        raise LimitExceeded(f"{count} images sent, more than max_images={ctx.settings.max_images}")
    if req.limit_faces > ctx.settings.max_faces:
        raise InvalidField(f"limit_faces={req.limit_faces} is more than max_faces={ctx.settings.max_faces}")
    options = req.options(ctx.settings.max_faces)
    check_request(options, ctx.workers.online())
    images, errors = _read_images(ctx, req)
    ctx.metrics.images.observe(count)
    settings = RenderSettings(
        api_ver=req.api_ver,
        landmarks=bool(req.return_landmarks),
        data_count=len(req.images.data),
        api_errors=errors,
    )
    failure = request_failure(settings)
    if failure is not None:
        raise failure

    job_id = uuid.uuid4().hex
    ctx.store.create(job_id, ExtractJob(images, options, g.request_id), settings)
    ctx.celery.send_task(
        EXTRACT_TASK,
        args=[job_id],
        task_id=job_id,
        queue=ctx.settings.queue,
        headers={"request_id": g.request_id},  # for the worker's log lines (TaskContextFilter)
    )
    if ctx.settings.replicated:
        _replicate(ctx, job_id)

    as_msgpack = wants_msgpack(request, req.msgpack)
    if req.run_async:
        accepted: JobAccepted = {"id": job_id, "status": "queued", "status_url": f"/results/{job_id}"}
        return encode(accepted, as_msgpack, status=202)
    state = ctx.store.wait(job_id, ctx.settings.sync_timeout_s)
    if state.error is not None:
        raise from_info(state.error)
    if state.result is None:
        raise ResultTimeout(
            f"no result within sync_timeout_s={ctx.settings.sync_timeout_s}; poll /results/{job_id}",
            job_id,
        )
    ctx.metrics.faces.observe(_faces(state.result))
    total_ms = (time.perf_counter() - started) * 1000
    return encode(render(settings, state.result, total_ms), as_msgpack)
