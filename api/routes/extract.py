"""POST /extract: validate, store the images once in Redis, queue a job, wait or return 202."""

from __future__ import annotations

from flask import Blueprint, Response, g

from api.availability import check_request
from api.context import ApiContext, context
from api.openapi import Operation, Reply, documented
from api.render import request_failure
from api.schemas import ErrorDetail, ExtractRequest, ExtractV1, ExtractV2, JobAccepted
from api.submit import IDEMPOTENCY_DOC, Flags, Submission, json_body, read_images, submit
from shared.contract import ExtractJob, RenderSettings
from shared.errors import InvalidField, InvalidRequest, LimitExceeded

bp = Blueprint("extract", __name__)


EXTRACT_DOC = Operation(
    summary="Detect faces and extract embeddings",
    request=ExtractRequest,
    headers=(IDEMPOTENCY_DOC,),
    replies={
        200: Reply(
            "api_ver 1: a list of faces per image; api_ver 2: ExtractV2. MessagePack when Accept is "
            "application/x-msgpack.",
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


def _request(body: bytes) -> ExtractRequest:
    return ExtractRequest.model_validate(json_body(body))


def _flags(body: bytes) -> Flags:
    req = _request(body)
    return Flags(req.run_async, req.msgpack)


def _prepare(ctx: ApiContext, body: bytes, owner: str) -> Submission:
    req = _request(body)
    count = req.images.count
    if count == 0:
        raise InvalidRequest("images.data is empty: send at least one base64 image (or images.urls)")
    if count > ctx.settings.max_images:
        raise LimitExceeded(f"{count} images sent, more than max_images={ctx.settings.max_images}")
    if req.limit_faces > ctx.settings.max_faces:
        raise InvalidField(f"limit_faces={req.limit_faces} is more than max_faces={ctx.settings.max_faces}")
    options = req.options(ctx.settings.max_faces)
    check_request(options, ctx.workers.online())
    images, errors = read_images(ctx, req.images)
    settings = RenderSettings(
        api_ver=req.api_ver,
        landmarks=bool(req.return_landmarks),
        data_count=len(req.images.data),
        api_errors=errors,
        owner=owner,
    )
    failure = request_failure(settings)
    if failure is not None:
        raise failure
    ctx.metrics.images.observe(count)
    return Submission(ExtractJob(images, options, g.request_id), settings, Flags(req.run_async, req.msgpack))


@bp.post("/extract")
@documented(EXTRACT_DOC)
def extract() -> Response:
    ctx = context()
    return submit(ctx, lambda body, owner: _prepare(ctx, body, owner), _flags)
