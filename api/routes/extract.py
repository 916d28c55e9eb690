"""POST /extract: validate, store the images once in Redis, queue a job, wait or return 202."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from flask import Blueprint, Response, request

from api.availability import check_request
from api.context import context
from api.render import encode, render, wants_msgpack
from shared.errors import (
    FaceRestError,
    InvalidRequest,
    JobFailed,
    LimitExceeded,
    ModelNotLoaded,
    ResultTimeout,
)
from shared.images import decode_base64, probe
from shared.jobs import JobStatus
from shared.queue import EXTRACT_TASK
from shared.schemas import ErrorRecord, ExtractRequest, JobPayload

bp = Blueprint("extract", __name__)


def _json_body() -> Any:
    try:
        return orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc


def _read_images(req: ExtractRequest) -> tuple[list[bytes | None], dict[str, ErrorRecord]]:
    """Decode base64 and check headers; in api_ver 1 any bad image fails the whole request."""
    settings = context().settings
    images: list[bytes | None] = []
    errors: dict[str, ErrorRecord] = {}
    for index, text in enumerate(req.images.data):
        try:
            data = decode_base64(text, settings.max_image_bytes)
            probe(data, settings.max_image_pixels)
            images.append(data)
        except FaceRestError as exc:
            exc.message = f"images.data[{index}]: {exc.message}"
            if req.api_ver == "1":
                raise
            images.append(None)
            errors[str(index)] = {"code": exc.code, "message": exc.message}
    return images, errors


@bp.post("/extract")
def extract() -> Response:
    started = time.perf_counter()
    ctx = context()
    req = ExtractRequest.model_validate(_json_body())
    count = len(req.images.data)
    if count == 0:
        raise InvalidRequest("images.data is empty: send at least one base64 image")
    if count > ctx.settings.max_images:
        raise LimitExceeded(f"{count} images sent, more than max_images={ctx.settings.max_images}")
    options = req.options(ctx.settings.max_faces)
    check_request(options, ctx.workers.online())
    images, errors = _read_images(req)

    job_id = uuid.uuid4().hex
    payload: JobPayload = {
        "images": images,
        "errors": errors,
        "options": options.to_wire(),
        "request_id": request.headers.get("X-Request-ID", job_id),
    }
    meta = {"api_ver": req.api_ver, "landmarks": "1" if req.return_landmarks else ""}
    ctx.store.create(job_id, payload, meta)
    ctx.celery.send_task(EXTRACT_TASK, args=[job_id], task_id=job_id, queue=ctx.settings.queue)

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
    total_ms = (time.perf_counter() - started) * 1000
    return encode(render(state.result, req.api_ver, bool(req.return_landmarks), total_ms), as_msgpack)
