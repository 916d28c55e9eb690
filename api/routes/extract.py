"""POST /extract: validate, store the images once in Redis, queue a job, wait or return 202."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from flask import Blueprint, Response, g, request

from api.availability import check_request
from api.context import ApiContext, context
from api.render import encode, render, wants_msgpack
from shared.errors import (
    FaceRestError,
    InvalidField,
    InvalidRequest,
    JobFailed,
    LimitExceeded,
    ModelNotLoaded,
    Overloaded,
    ResultTimeout,
)
from shared.images import decode_base64, probe
from shared.jobs import JobStatus
from shared.queue import EXTRACT_TASK
from shared.schemas import ErrorRecord, ExtractRequest, JobPayload, JobResult

bp = Blueprint("extract", __name__)

URL_FETCH_THREADS = 8  # URLs of one request fetched at once


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


def _read_images(ctx: ApiContext, req: ExtractRequest) -> tuple[list[bytes | None], dict[str, ErrorRecord]]:
    """Decode base64, fetch URLs and check headers; in api_ver 1 any bad image fails the request."""
    settings = ctx.settings
    images: list[bytes | None] = []
    errors: dict[str, ErrorRecord] = {}

    def failed(index: int, where: str, exc: FaceRestError) -> None:
        exc.message = f"{where}: {exc.message}"
        if req.api_ver == "1":
            raise exc
        images.append(None)
        errors[str(index)] = {"code": exc.code, "message": exc.message}

    for index, text in enumerate(req.images.data):
        try:
            data = decode_base64(text, settings.max_image_bytes)
            probe(data, settings.max_image_pixels)
            images.append(data)
        except FaceRestError as exc:
            failed(index, f"images.data[{index}]", exc)
    if req.images.urls:
        with ThreadPoolExecutor(min(URL_FETCH_THREADS, len(req.images.urls))) as pool:
            futures = [pool.submit(_fetch, ctx, url) for url in req.images.urls]
            for offset, (url, future) in enumerate(zip(req.images.urls, futures, strict=True)):
                try:
                    images.append(future.result())
                except FaceRestError as exc:
                    failed(len(req.images.data) + offset, f"images.urls[{offset}] {url!r}", exc)
    return images, errors


def _faces(result: JobResult) -> int:
    return sum(len(image.get("faces", [])) for image in result["images"])


@bp.post("/extract")
def extract() -> Response:
    started = time.perf_counter()
    ctx = context()
    _check_queue(ctx)
    req = ExtractRequest.model_validate(_json_body())
    count = len(req.images.data) + len(req.images.urls)
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

    job_id = uuid.uuid4().hex
    payload: JobPayload = {
        "images": images,
        "errors": errors,
        "options": options.to_wire(),
        "request_id": g.request_id,
    }
    meta = {
        "api_ver": req.api_ver,
        "landmarks": "1" if req.return_landmarks else "",
        "data_count": str(len(req.images.data)),
    }
    ctx.store.create(job_id, payload, meta)
    ctx.celery.send_task(
        EXTRACT_TASK,
        args=[job_id],
        task_id=job_id,
        queue=ctx.settings.queue,
        headers={"request_id": g.request_id},  # for the worker's log lines (TaskContextFilter)
    )

    as_msgpack = wants_msgpack(request, req.msgpack)
    if req.run_async:
        accepted = {"id": job_id, "status": JobStatus.QUEUED.value, "status_url": f"/results/{job_id}"}
        return encode(accepted, as_msgpack, status=202)
    state = ctx.store.wait(job_id, ctx.settings.sync_timeout_s)
    if state.status is JobStatus.FAILED and state.error is not None:
        if state.error["code"] == ModelNotLoaded.code:
            raise ModelNotLoaded(state.error["message"], [])
        raise JobFailed(f"job {job_id} failed: {state.error['message']}")
    if state.result is None:
        raise ResultTimeout(
            f"no result within sync_timeout_s={ctx.settings.sync_timeout_s}; poll /results/{job_id}",
            job_id,
        )
    ctx.metrics.faces.observe(_faces(state.result))
    total_ms = (time.perf_counter() - started) * 1000
    rendered = render(state.result, req.api_ver, bool(req.return_landmarks), total_ms, len(req.images.data))
    return encode(rendered, as_msgpack)
