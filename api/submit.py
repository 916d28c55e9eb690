"""What every queued endpoint shares (/extract, the collection and /verify routes): the request's
owner, its Idempotency-Key, the queue's depth, reading the images, queueing the one job, waiting
for it and answering from it (also for a retry with the same key)."""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from flask import Response, g, request

from api.auth import presented_key
from api.context import ApiContext
from api.openapi import Header
from api.render import encode, render_result, wants_msgpack
from api.schemas import Images, JobAccepted
from shared.contract import ErrorInfo, ExtractResult, IdempotencyRecord, Job, RenderSettings
from shared.errors import (
    FaceRestError,
    IdempotencyConflict,
    InvalidField,
    InvalidRequest,
    JobNotFound,
    Overloaded,
    ResultTimeout,
    from_info,
)
from shared.images import decode_base64, probe
from shared.jobs import FINISHED, JobStatus
from shared.queue import EXTRACT_TASK

log = logging.getLogger("facerest.api")

URL_FETCH_THREADS = 8  # URLs of one request fetched at once
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Printable ASCII without spaces: a UUID, a hash, a client's own request id.
IDEMPOTENCY_KEY = re.compile(r"^[!-~]{1,255}$")
UNSUPPORTED_MEDIA_TYPE = (
    "unsupported_media_type: the body is not application/json, application/msgpack or multipart/form-data"
)
# With Sentinel: how long a request waits for a Redis replica to hold its new job.
REPLICA_WAIT_MS = 1000

IDEMPOTENCY_DOC = Header(
    IDEMPOTENCY_HEADER,
    "Makes a retry safe: the same key with the same body, within result_ttl_s, returns the "
    "job the first request made (its result once done; 202 with its state for async) "
    "instead of queueing another; with a different body, 409 idempotency_conflict. Keys "
    "are per API key.",
    {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern, "minLength": 1, "maxLength": 255},
)


@dataclass(frozen=True, slots=True)
class Flags:
    """How a request wants its answer: now or 202, JSON or MessagePack."""

    run_async: bool
    msgpack: bool


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated request, ready to queue."""

    job: Job
    render: RenderSettings
    flags: Flags


def json_body(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {exc}") from exc


def owner(ctx: ApiContext) -> str:
    """Whose request this is: its API key's digest ("" with keys off); its jobs are its own."""
    api_key = presented_key(request.headers.get("X-API-Key"), request.headers.get("Authorization"))
    return ctx.api_keys.scope(api_key)


def idempotency_key(ctx: ApiContext, scope: str) -> str | None:
    """The Redis key of the request's Idempotency-Key (scoped by its API key), if it sent one."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise InvalidField(f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters, no spaces")
    return ctx.store.idempotency_key(scope, value)


def check_queue(ctx: ApiContext) -> None:
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


def read_images(ctx: ApiContext, images_in: Images) -> tuple[list[bytes], dict[int, ErrorInfo]]:
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

    for index, text in enumerate(images_in.data):
        read(index, f"images.data[{index}]", partial(from_base64, text))
    if images_in.urls:
        with ThreadPoolExecutor(min(URL_FETCH_THREADS, len(images_in.urls))) as pool:
            futures = [pool.submit(_fetch, ctx, url) for url in images_in.urls]
            for offset, (url, future) in enumerate(zip(images_in.urls, futures, strict=True)):
                read(len(images_in.data) + offset, f"images.urls[{offset}] {url!r}", future.result)
    return images, errors


def submit(
    ctx: ApiContext,
    prepare: Callable[[bytes, str], Submission],
    flags: Callable[[bytes], Flags],
    status: int = 200,
) -> Response:
    """Queue the job ``prepare`` makes of the body (it is given the body and the owner), and answer:
    202 for async, else the finished job's body with ``status``. An Idempotency-Key seen before
    answers from its job; ``flags`` reads such a replayed body's answer options."""
    started = time.perf_counter()
    scope = owner(ctx)
    key = idempotency_key(ctx, scope)
    # A retry of a request that made a job answers from that job, even while the queue is full.
    record = None if key is None else ctx.store.idempotency(key)
    if record is None:
        check_queue(ctx)
    body = request.get_data(cache=False)
    digest = hashlib.sha256(body).hexdigest()
    if record is not None:
        return _replay(ctx, record, key, digest, flags(body), started, status)
    submission = prepare(body, scope)
    job_id = uuid.uuid4().hex
    # The key is recorded with the job, atomically: a concurrent request with the same key that
    # got there first made the job, and this one answers from it.
    claimed = None if key is None else (key, digest)
    existing = ctx.store.create(job_id, submission.job, submission.render, claimed)
    if existing is not None:
        return _replay(ctx, existing, key, digest, submission.flags, started, status)
    _send(ctx, job_id, idempotent=claimed is not None)
    as_msgpack = wants_msgpack(request, submission.flags.msgpack)
    if submission.flags.run_async:
        accepted: JobAccepted = {"id": job_id, "status": "queued", "status_url": f"/results/{job_id}"}
        return encode(accepted, as_msgpack, status=202)
    return _answer(ctx, job_id, started, as_msgpack, key, status)


def _replicate(ctx: ApiContext, job_id: str) -> None:
    """With Sentinel, answer only once a replica holds the job: a failover then cannot lose a
    job whose 200 or 202 was sent. Without a replica in time the answer goes out anyway."""
    acked = ctx.store.replicate(job_id, 1, REPLICA_WAIT_MS)
    if acked < 1:
        log.warning("job %s: no Redis replica acknowledged it within %d ms", job_id, REPLICA_WAIT_MS)


def _send(ctx: ApiContext, job_id: str, idempotent: bool) -> None:
    # One task runs every job kind: the worker reads the kind from the stored job.
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
    key: str | None,
    digest: str,
    flags: Flags,
    started: float,
    status: int,
) -> Response:
    """Answer a request whose Idempotency-Key made a job before, from that job."""
    if record.body_digest != digest:
        raise IdempotencyConflict(
            f"this {IDEMPOTENCY_HEADER} was sent before with a different body (job {record.job_id}); "
            "use a new key for a new request"
        )
    as_msgpack = wants_msgpack(request, flags.msgpack)
    state = ctx.store.state(record.job_id)
    if state.status is JobStatus.QUEUED and not state.sent:
        # The request that made the job died before queueing it (or is just queueing it: a second
        # message is harmless, the copy that comes second is dropped by the worker's claim).
        log.warning("job %s: queued again by a retry with its Idempotency-Key", state.id)
        _send(ctx, state.id, idempotent=True)
    if flags.run_async:
        accepted: JobAccepted = {
            "id": state.id,
            "status": state.status.value,
            "status_url": f"/results/{state.id}",
        }
        return encode(accepted, as_msgpack, status=202)
    return _answer(ctx, record.job_id, started, as_msgpack, key, status)


def _answer(
    ctx: ApiContext, job_id: str, started: float, as_msgpack: bool, key: str | None, status: int
) -> Response:
    """Wait for the job as a synchronous request does, and render its result.

    A result (or error) handed over here is kept only sync_result_ttl_s more, for a retry with
    the same Idempotency-Key; one that is not ready in time stays for polling (result_ttl_s).
    """
    state = ctx.store.wait(job_id, ctx.settings.sync_timeout_s)
    if state.status in FINISHED:
        ctx.store.delivered(job_id, ctx.settings.sync_result_ttl_s, key)
    if state.error is not None:
        raise from_info(state.error)
    if state.result is None:
        raise ResultTimeout(
            f"no result within sync_timeout_s={ctx.settings.sync_timeout_s}; poll /results/{job_id}",
            job_id,
        )
    if state.render is None:  # every job the API stores has its settings
        raise JobNotFound(f"job {job_id!r} has no render settings")
    if isinstance(state.result, ExtractResult):
        ctx.metrics.faces.observe(sum(len(image.faces) for image in state.result.images))
    total_ms = (time.perf_counter() - started) * 1000
    return encode(render_result(state.render, state.result, total_ms), as_msgpack, status=status)
