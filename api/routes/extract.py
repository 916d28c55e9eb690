"""POST /extract: validate, store the images once in Redis, queue a job, wait or return 202."""

from __future__ import annotations

import logging
import re
import time
import uuid

from flask import Blueprint, Response, g, request

from api.auth import presented_key
from api.availability import check_request
from api.bodies import Body, read_body, read_images
from api.context import ApiContext, context
from api.openapi import Header, Operation, Reply, Upload, documented
from api.render import encode, render, request_failure, request_warnings, wants_msgpack
from api.schemas import ErrorDetail, ExtractRequest, ExtractV1, ExtractV2, JobAccepted
from shared.contract import ExtractJob, ExtractResult, IdempotencyRecord, RenderSettings
from shared.errors import (
    IdempotencyConflict,
    InvalidField,
    InvalidRequest,
    JobNotFound,
    LimitExceeded,
    Overloaded,
    ResultTimeout,
    from_info,
)
from shared.jobs import FINISHED, JobStatus
from shared.queue import EXTRACT_TASK

bp = Blueprint("extract", __name__)
log = logging.getLogger("facerest.api")

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Options asked for and not served (detect_masks), also for the list format, which has no room.
WARNING_HEADER = "X-Facerest-Warning"
# Printable ASCII without spaces: a UUID, a hash, a client's own request id.
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")
# With Sentinel: how long a request waits for a Redis replica to hold its new job.
REPLICA_WAIT_MS = 1000


def request_owner(ctx: ApiContext) -> str:
    """Whose request this is: its API key's digest ("" with keys off); its jobs are its own."""
    api_key = presented_key(request.headers.get("X-API-Key"), request.headers.get("Authorization"))
    return ctx.api_keys.scope(api_key)


def _idempotency_key(ctx: ApiContext, owner: str) -> str | None:
    """The Redis key of the request's Idempotency-Key (scoped by its API key), if it sent one."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise InvalidField(f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters, no spaces")
    return ctx.store.idempotency_key(owner, value)


def check_queue(ctx: ApiContext) -> None:
    """Refuse new work at once while the queue is full, instead of letting requests pile up."""
    depth = int(ctx.redis.llen(ctx.settings.queue))
    if depth >= ctx.settings.max_queue_depth:
        raise Overloaded(
            f"{depth} jobs queued, max_queue_depth={ctx.settings.max_queue_depth}; "
            f"retry in {ctx.settings.retry_after_s} s",
            ctx.settings.retry_after_s,
        )


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
    msgpack_request=True,
    upload=Upload(),
    headers=(
        Header(
            IDEMPOTENCY_HEADER,
            "Makes a retry safe: the same key with the same body, within result_ttl_s, returns the "
            "job the first request made (its result once done; 202 with its state for async) "
            "instead of queueing another; with a different body, 409 idempotency_conflict. Keys "
            "are per API key.",
            {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern, "minLength": 1, "maxLength": 255},
        ),
    ),
    replies={
        200: Reply(
            "api_ver 1: a list of faces per image; api_ver 2: the envelope ExtractV2. Without "
            "api_ver, FACEREST_RESPONSE_FORMAT decides (docs/compatibility.md). MessagePack when "
            "Accept is application/x-msgpack or msgpack is true.",
            ExtractV1 | ExtractV2,
            msgpack=True,
        ),
        202: Reply('Queued ("async": true); poll status_url', JobAccepted, msgpack=True),
        400: Reply("Malformed JSON or request; model_not_loaded: see 'available'", ErrorDetail),
        409: Reply("idempotency_conflict: the Idempotency-Key came before with another body", ErrorDetail),
        413: Reply("A size limit was exceeded", ErrorDetail),
        415: Reply(
            "unsupported_media_type: the body is not application/json, application/msgpack or "
            "multipart/form-data",
            ErrorDetail,
        ),
        422: Reply("Invalid field, image or image URL", ErrorDetail),
        500: Reply("The job failed in the worker (crashed it max_attempts times)", ErrorDetail),
        503: Reply(
            "Too many jobs queued (max_queue_depth), or Redis unavailable: retry after Retry-After seconds",
            ErrorDetail,
            retry_after=True,
        ),
        504: Reply(
            "No result within the synchronous timeout; the body has the job id",
            ErrorDetail,
            retry_after=True,
        ),
    },
)


@bp.post("/extract")
@documented(EXTRACT_DOC)
def extract() -> Response:
    started = time.perf_counter()
    ctx = context()
    owner = request_owner(ctx)
    idempotency_key = _idempotency_key(ctx, owner)
    # A retry of a request that made a job answers from that job, even while the queue is full.
    record = None if idempotency_key is None else ctx.store.idempotency(idempotency_key)
    if record is None:
        check_queue(ctx)
    body = read_body(ExtractRequest)
    if record is not None:
        return _replay(ctx, record, idempotency_key, body, started)
    req = body.request
    count = req.images.count
    if count == 0:
        raise InvalidRequest("images.data is empty: send at least one base64 image (or images.urls)")
    if count > ctx.settings.max_images:
        raise LimitExceeded(f"{count} images sent, more than max_images={ctx.settings.max_images}")
    if req.limit_faces > ctx.settings.max_faces:
        raise InvalidField(f"limit_faces={req.limit_faces} is more than max_faces={ctx.settings.max_faces}")
    options = req.options(ctx.settings.max_faces)
    check_request(options, ctx.workers.online())
    read = read_images(ctx, req)
    images = read.accepted
    settings = RenderSettings(
        api_ver=body.api_ver(ctx.settings.response_format),
        landmarks=bool(req.return_landmarks),
        data_count=len(req.images.data),
        api_errors=read.errors,
        owner=owner,
        warnings=request_warnings(req),
    )
    failure = request_failure(settings)
    if failure is not None:
        raise failure

    job_id = uuid.uuid4().hex
    job = ExtractJob(images, options, g.request_id)
    # The key is recorded with the job, atomically: a concurrent request with the same key that
    # got there first made the job, and this one answers from it.
    claimed = None if idempotency_key is None else (idempotency_key, body.digest)
    existing = ctx.store.create(job_id, job, settings, claimed)
    if existing is not None:
        return _replay(ctx, existing, idempotency_key, body, started)
    ctx.metrics.images.observe(count)
    send(ctx, job_id, idempotent=claimed is not None)

    as_msgpack = wants_msgpack(request, req.msgpack)
    if req.run_async:
        accepted: JobAccepted = {"id": job_id, "status": "queued", "status_url": f"/results/{job_id}"}
        return encode(accepted, as_msgpack, status=202)
    return _answer(ctx, job_id, started, as_msgpack, idempotency_key)


def send(ctx: ApiContext, job_id: str, idempotent: bool) -> None:
    ctx.celery.send_task(
        EXTRACT_TASK,
        args=[job_id],
        task_id=job_id,
        queue=ctx.settings.queue,
        headers={"request_id": g.request_id},  # for the worker's log lines (TaskContextFilter)
    )
    if idempotent:
        ctx.store.mark_sent(job_id)
    if ctx.settings.replicated:
        _replicate(ctx, job_id)


def _replay(
    ctx: ApiContext,
    record: IdempotencyRecord,
    idempotency_key: str | None,
    body: Body[ExtractRequest],
    started: float,
) -> Response:
    """Answer a request whose Idempotency-Key made a job before, from that job."""
    if record.body_digest != body.digest:
        raise IdempotencyConflict(
            f"this {IDEMPOTENCY_HEADER} was sent before with a different body (job {record.job_id}); "
            "use a new key for a new request"
        )
    req = body.request
    as_msgpack = wants_msgpack(request, req.msgpack)
    state = ctx.store.state(record.job_id)
    if state.status is JobStatus.QUEUED and not state.sent:
        # The request that made the job died before queueing it (or is just queueing it: a second
        # message is harmless, the copy that comes second is dropped by the worker's claim).
        log.warning("job %s: queued again by a retry with its Idempotency-Key", state.id)
        send(ctx, state.id, idempotent=True)
    if req.run_async:
        accepted: JobAccepted = {
            "id": state.id,
            "status": state.status.value,
            "status_url": f"/results/{state.id}",
        }
        return encode(accepted, as_msgpack, status=202)
    return _answer(ctx, record.job_id, started, as_msgpack, idempotency_key)


def wait_result(
    ctx: ApiContext, job_id: str, idempotency_key: str | None = None
) -> tuple[ExtractResult, RenderSettings]:
    """Wait for the job as a synchronous request does: its result, or its error raised.

    A result (or error) handed over here is kept only sync_result_ttl_s more, for a retry with
    the same Idempotency-Key; one that is not ready in time stays for polling (result_ttl_s).
    """
    state = ctx.store.wait(job_id, ctx.settings.sync_timeout_s)
    if state.status in FINISHED:
        ctx.store.delivered(job_id, ctx.settings.sync_result_ttl_s, idempotency_key)
    if state.error is not None:
        raise from_info(state.error)
    if state.result is None:
        raise ResultTimeout(
            f"no result within sync_timeout_s={ctx.settings.sync_timeout_s}; poll /results/{job_id}",
            job_id,
        )
    if state.render is None:  # every job the API stores has its settings
        raise JobNotFound(f"job {job_id!r} has no render settings")
    ctx.metrics.faces.observe(_faces(state.result))
    return state.result, state.render


def _answer(
    ctx: ApiContext, job_id: str, started: float, as_msgpack: bool, idempotency_key: str | None
) -> Response:
    """Wait for the job and render its result in the request's format."""
    result, settings = wait_result(ctx, job_id, idempotency_key)
    total_ms = (time.perf_counter() - started) * 1000
    response = encode(render(settings, result, total_ms), as_msgpack)
    if settings.warnings:
        response.headers[WARNING_HEADER] = "; ".join(settings.warnings)
    return response
