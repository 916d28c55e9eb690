"""What every queued endpoint shares (/extract, /draw_detections, the collection routes and
/verify): the request's owner, its Idempotency-Key, the queue's depth, reading the body (one
decoder: api/bodies.py), queueing the job (a large ingest as several: shared/split.py), waiting
for it and answering from it (also for a retry with the same key)."""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import msgspec
from flask import Response, g, request
from werkzeug.exceptions import HTTPException

from api.auth import request_key, request_owner, share_owner
from api.bodies import Body, read_body
from api.context import ApiContext
from api.openapi import Header, Operation, Reply, Upload
from api.render import encode, render_result, wants_msgpack
from api.schemas import ErrorDetail, JobAccepted, QueuedBody
from shared.contract import (
    CompactJob,
    EnrollJob,
    ExtractResult,
    IdempotencyRecord,
    IngestJob,
    Job,
    JobResult,
    ReclusterJob,
    RecognizeJob,
    ReindexJob,
    RenderSettings,
    VerifyJob,
    VideoJob,
)
from shared.errors import (
    IdempotencyConflict,
    InvalidField,
    JobNotFound,
    Overloaded,
    ResultTimeout,
    TooManyJobs,
    UrlFetchFailed,
    UrlRefused,
    from_info,
)
from shared.jobs import FINISHED, JobStatus, Share, ShareFull
from shared.queue import EXTRACT_TASK, lane_for, queue_depth, queue_lanes, resend_lane
from shared.settings import Settings
from shared.split import split_job

log = logging.getLogger("facerest.api")

QueuedT = TypeVar("QueuedT", bound=QueuedBody)
ReadT = TypeVar("ReadT")

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Options asked for and not served (detect_masks), also for the list format, which has no room.
WARNING_HEADER = "X-Facerest-Warning"
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
    "instead of queueing another; with a different body, or to another method or path, 409 "
    "idempotency_conflict. Keys are per API key.",
    {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern, "minLength": 1, "maxLength": 255},
)

# What every queued endpoint may answer besides its own replies (which win over these).
QUEUED_REPLIES: Mapping[int, Reply] = {
    202: Reply('Queued ("async": true); poll status_url', JobAccepted, msgpack=True),
    409: Reply(
        "idempotency_conflict: the Idempotency-Key came before with another body or to another route",
        ErrorDetail,
    ),
    413: Reply("A size limit was exceeded (max_faces_per_request among them)", ErrorDetail),
    415: Reply(UNSUPPORTED_MEDIA_TYPE, ErrorDetail),
    429: Reply(
        "too_many_jobs: this API key (or client address) has max_queued_per_key jobs, or "
        "max_images_in_flight_per_key images, unfinished: retry after Retry-After seconds",
        ErrorDetail,
        retry_after=True,
    ),
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
}


def queued_operation(
    summary: str, request_model: type[QueuedBody], replies: Mapping[int, Reply]
) -> Operation:
    """The OpenAPI operation of a queued endpoint: its body in JSON, MessagePack or multipart
    (api/bodies.py), the Idempotency-Key header, and the shared replies."""
    return Operation(
        summary=summary,
        request=request_model,
        msgpack_request=True,
        upload=Upload(),
        headers=(IDEMPOTENCY_DOC,),
        replies=dict(sorted({**QUEUED_REPLIES, **replies}.items())),
    )


@dataclass(frozen=True, slots=True)
class Flags:
    """How a request wants its answer: now or 202, JSON or MessagePack; and its callback_url."""

    run_async: bool
    msgpack: bool
    callback: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated request, ready to queue."""

    job: Job
    render: RenderSettings


@dataclass(frozen=True, slots=True)
class Read(Generic[ReadT]):
    """A request as read for queueing: what the route prepares from, its answer flags, and the
    digest of its body (a retry with the same Idempotency-Key must send the same bytes)."""

    request: ReadT
    flags: Flags
    digest: str


def idempotency_key(ctx: ApiContext, owner: str) -> str | None:
    """The Redis key of the request's Idempotency-Key (scoped by its API key), if it sent one."""
    value = request.headers.get(IDEMPOTENCY_HEADER)
    if value is None:
        return None
    if not IDEMPOTENCY_KEY.match(value):
        raise InvalidField(f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters, no spaces")
    return ctx.store.idempotency_key(owner, value)


def request_route() -> str:
    """The request's method and path, which an Idempotency-Key is bound to besides its body."""
    return f"{request.method} {request.path}"


def check_queue(ctx: ApiContext) -> None:
    """Refuse new work at once while the queue (all its lanes) is full, instead of letting
    requests pile up."""
    depth = queue_depth(ctx.redis, queue_lanes(ctx.settings))
    if depth >= ctx.settings.max_queue_depth:
        raise Overloaded(
            f"{depth} jobs queued, max_queue_depth={ctx.settings.max_queue_depth}; "
            f"retry in {ctx.settings.retry_after_s} s",
            ctx.settings.retry_after_s,
        )


def discard_body(limit: int) -> None:
    """Read the request's body to its end (at most ``limit`` bytes) without keeping it. A refusal
    answered before the body was read would otherwise close a socket with unread data in it,
    which makes the kernel reset the connection: the client, still sending, sees the connection
    dropped instead of the answer (a flood's 503s did)."""
    stream = request.stream
    left = limit
    try:
        while left > 0:
            chunk = stream.read(min(left, 1 << 16))
            if not chunk:
                return
            left -= len(chunk)
    except (OSError, ValueError, HTTPException):
        return  # the client went away, or sent more than the limit: nothing left to save


def limit_cost(settings: Settings, job: Job) -> Job:
    """Bound what one job may cost a worker: the faces across its images (max_faces_per_request,
    checked by the worker as it detects), and for recognition the lowest detection score
    (min_det_threshold: below it detectors turn texture into thousands of "faces")."""
    if isinstance(job, ReindexJob | CompactJob | ReclusterJob | VideoJob):
        return job
    floor = settings.min_det_threshold
    if isinstance(job, EnrollJob | RecognizeJob | VerifyJob | IngestJob) and job.options.threshold < floor:
        raise InvalidField(f"det_threshold={job.options.threshold} is below min_det_threshold={floor}")
    options = msgspec.structs.replace(job.options, max_faces_total=settings.max_faces_per_request)
    return msgspec.structs.replace(job, options=options)


def images_body(model: type[QueuedT]) -> Callable[[], Read[Body[QueuedT]]]:
    """Read the body as ``model`` in any of its wire forms (api/bodies.py)."""

    def read() -> Read[Body[QueuedT]]:
        body = read_body(model)
        flags = Flags(body.request.run_async, body.request.msgpack, body.request.callback_url)
        return Read(body, flags, body.digest)

    return read


def submit(
    ctx: ApiContext,
    read: Callable[[], Read[ReadT]],
    prepare: Callable[[ReadT, str], Submission],
    status: int = 200,
    answer: Callable[[ReadT, JobResult], Response] | None = None,
) -> Response:
    """Queue the job ``prepare`` makes of the request ``read`` reads (it is given the request and
    its owner), and answer: 202 for async, else the finished job's body with ``status`` (or what
    ``answer`` makes of the request and the job's result: /draw_detections' picture). An
    Idempotency-Key seen before answers from its job."""
    started = time.perf_counter()
    owner = request_owner(ctx.api_keys)
    key = idempotency_key(ctx, owner)
    # A retry of a request that made a job answers from that job, even while the queue is full.
    record = None if key is None else ctx.store.idempotency(key)
    if record is None:
        try:
            check_queue(ctx)
        except Overloaded:
            discard_body(ctx.settings.max_body_bytes)
            raise
    got = read()
    finish = None if answer is None else partial(answer, got.request)
    if record is not None:
        return _replay(ctx, record, key, got.digest, got.flags, started, status, finish)
    callback = callback_url(ctx, got.flags.callback)  # before prepare, which may fetch image URLs
    submission = prepare(got.request, owner)
    job = limit_cost(ctx.settings, submission.job)
    job_id = uuid.uuid4().hex
    # A large request is several jobs (shared/split.py) under this id, one message each, so that
    # several workers take it at once; one that fits is its own one job.
    parts = split_job(job, ctx.settings.ingest_job_photos)
    children = [(uuid.uuid4().hex, part) for part in parts] if len(parts) > 1 else []
    # The key is recorded with the job, atomically: a concurrent request with the same key that
    # got there first made the job, and this one answers from it. The owner's share is counted
    # in the same step, so concurrent requests of one owner cannot together pass its caps.
    claimed = None if key is None else (key, got.digest)
    settings = ctx.settings
    sharer = share_owner(ctx.api_keys, settings.trusted_networks)
    share = Share(sharer, settings.max_queued_per_key, settings.max_images_in_flight_per_key)
    # The owner's lane: its flood queues behind its own jobs, not the other owners'.
    lane = lane_for(settings, sharer)
    existing = ctx.store.create(
        job_id,
        job,
        submission.render,
        claimed,
        route=request_route(),
        share=share,
        queue=lane,
        callback=callback,
        children=children,
    )
    if isinstance(existing, ShareFull):
        raise TooManyJobs(
            f"this API key (or client address, with keys off) has {existing.jobs} unfinished jobs "
            f"with {existing.images} images; max_queued_per_key={settings.max_queued_per_key}, "
            f"max_images_in_flight_per_key={settings.max_images_in_flight_per_key}; "
            f"retry in {settings.retry_after_s} s",
            settings.retry_after_s,
        )
    if existing is not None:
        return _replay(ctx, existing, key, got.digest, got.flags, started, status, finish)
    send(ctx, job_id, lane, idempotent=claimed is not None, messages=[child for child, _ in children])
    as_msgpack = wants_msgpack(request, got.flags.msgpack)
    if got.flags.run_async:
        accepted: JobAccepted = {"id": job_id, "status": "queued", "status_url": f"/results/{job_id}"}
        return encode(accepted, as_msgpack, status=202)
    return _answer(ctx, job_id, started, as_msgpack, key, status, finish)


def callback_url(ctx: ApiContext, requested: str | None) -> str:
    """Where the job's envelope goes when it ends: the request's callback_url, else its API key's
    default, else FACEREST_WEBHOOK_URL; "" for none. Checked against the webhook address rules
    now, so a client learns at once (the courier checks again at delivery: DNS may change)."""
    url = requested or ctx.api_keys.default_callback(request_key()) or ctx.settings.webhook_url
    if not url:
        return ""
    if not ctx.settings.webhook_secret.get_secret_value():
        raise InvalidField(
            "callback_url: webhooks are off here (the operator has not set FACEREST_WEBHOOK_SECRET)"
        )
    try:
        ctx.webhook_policy.check(url)
    except (UrlRefused, UrlFetchFailed) as exc:
        raise type(exc)(f"callback_url: {exc.message}") from None
    return url


def raw_digest() -> str:
    """The digest of a body no model reads (a reindex takes none), for its Idempotency-Key."""
    return hashlib.sha256(request.get_data(cache=True)).hexdigest()


def wait_for_replica(ctx: ApiContext, job_id: str) -> None:
    """With Sentinel, answer only once a replica holds the job: a failover then cannot lose a
    job whose 200 or 202 was sent. Without a replica in time the answer goes out anyway."""
    acked = ctx.store.replicate(job_id, 1, REPLICA_WAIT_MS)
    if acked < 1:
        log.warning("job %s: no Redis replica acknowledged it within %d ms", job_id, REPLICA_WAIT_MS)


def send(
    ctx: ApiContext,
    job_id: str,
    lane: str,
    idempotent: bool,
    messages: Sequence[str] = (),
    replicate: bool = True,
) -> None:
    """Queue a stored job in ``lane`` (one of shared/queue.py's queue_lanes): one message, or
    one per child of a split request (``messages``: their ids). One task runs every job kind: the
    worker reads the kind from the job. ``replicate``: with Sentinel, wait for a replica (a
    caller sending many jobs in turn waits once, after the last: ``wait_for_replica``)."""
    for message in messages or [job_id]:
        ctx.celery.send_task(
            EXTRACT_TASK,
            args=[message],
            task_id=message,
            queue=lane,
            headers={"request_id": g.request_id},  # for the worker's log lines (TaskContextFilter)
        )
    if idempotent:
        ctx.store.mark_sent(job_id)
    if replicate and ctx.settings.replicated:
        wait_for_replica(ctx, job_id)


def check_retry(record: IdempotencyRecord, digest: str) -> None:
    """IdempotencyConflict unless the request is a retry of the one whose Idempotency-Key made
    ``record``'s job: the same route, a body of the same ``digest``."""
    # The key names one request: sent to another route it would answer with another
    # collection's or endpoint's job (records stored before routes were kept have none).
    if record.route and record.route != request_route():
        raise IdempotencyConflict(
            f"this {IDEMPOTENCY_HEADER} was sent before to {record.route} (job {record.job_id}), "
            f"not {request_route()}; use a new key for a new request"
        )
    if record.body_digest != digest:
        raise IdempotencyConflict(
            f"this {IDEMPOTENCY_HEADER} was sent before with a different body (job {record.job_id}); "
            "use a new key for a new request"
        )


def _replay(
    ctx: ApiContext,
    record: IdempotencyRecord,
    key: str | None,
    digest: str,
    flags: Flags,
    started: float,
    status: int,
    finish: Callable[[JobResult], Response] | None,
) -> Response:
    """Answer a request whose Idempotency-Key made a job before, from that job."""
    check_retry(record, digest)
    as_msgpack = wants_msgpack(request, flags.msgpack)
    state = ctx.store.state(record.job_id)
    if state.status is JobStatus.QUEUED and not state.sent:
        # The request that made the job died before queueing it (or is just queueing it: a second
        # message is harmless, the copy that comes second is dropped by the worker's claim).
        log.warning("job %s: queued again by a retry with its Idempotency-Key", state.id)
        lane = resend_lane(ctx.settings, ctx.store.queue_of(state.id))
        send(ctx, state.id, lane, idempotent=True, messages=state.children)
    if flags.run_async:
        accepted: JobAccepted = {
            "id": state.id,
            "status": state.status.value,
            "status_url": f"/results/{state.id}",
        }
        return encode(accepted, as_msgpack, status=202)
    return _answer(ctx, record.job_id, started, as_msgpack, key, status, finish)


def wait_result(
    ctx: ApiContext, job_id: str, idempotency_key: str | None = None
) -> tuple[JobResult, RenderSettings]:
    """Wait for the job as a synchronous request does: its result, or its error raised.

    A result (or error) handed over here is kept only sync_result_ttl_s more, for a retry with
    the same Idempotency-Key, unless the job has a callback; one that is not ready in time stays
    for polling (result_ttl_s).
    """
    state = ctx.store.wait(job_id, ctx.settings.sync_timeout_s)
    # A job with a callback keeps its full TTL: its webhook, retried for up to
    # webhook_retry_for_s, sends the job's state.
    if state.status in FINISHED and state.callback is None:
        ctx.store.delivered(job_id, ctx.settings.sync_result_ttl_s, idempotency_key, state.children)
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
    return state.result, state.render


def _answer(
    ctx: ApiContext,
    job_id: str,
    started: float,
    as_msgpack: bool,
    key: str | None,
    status: int,
    finish: Callable[[JobResult], Response] | None,
) -> Response:
    """Wait for the job and render its result in the request's format (or ``finish`` it)."""
    result, settings = wait_result(ctx, job_id, key)
    if finish is not None:
        return finish(result)
    total_ms = (time.perf_counter() - started) * 1000
    response = encode(render_result(settings, result, total_ms), as_msgpack, status=status)
    if settings.warnings:
        response.headers[WARNING_HEADER] = "; ".join(settings.warnings)
    return response
