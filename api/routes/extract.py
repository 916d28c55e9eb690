"""POST /extract: validate, store the images once in Redis, queue a job, wait or return 202."""

from __future__ import annotations

from flask import Blueprint, Response, g

from api.availability import check_request
from api.bodies import Body, read_images
from api.context import ApiContext, context
from api.openapi import Reply, documented
from api.render import request_failure, request_warnings
from api.schemas import ErrorDetail, ExtractRequest, ExtractV1, ExtractV2
from api.submit import Submission, images_body, queued_operation, submit
from shared.contract import ExtractJob, RenderSettings
from shared.errors import InvalidField, InvalidRequest, LimitExceeded

bp = Blueprint("extract", __name__)


EXTRACT_DOC = queued_operation(
    "Detect faces and extract embeddings",
    ExtractRequest,
    {
        200: Reply(
            "api_ver 1: a list of faces per image; api_ver 2: the envelope ExtractV2. Without "
            "api_ver, FACEREST_RESPONSE_FORMAT decides (docs/compatibility.md). MessagePack when "
            "Accept is application/x-msgpack or msgpack is true.",
            ExtractV1 | ExtractV2,
            msgpack=True,
        ),
        400: Reply("Malformed JSON or request; model_not_loaded: see 'available'", ErrorDetail),
        422: Reply("Invalid field, image or image URL", ErrorDetail),
        500: Reply("The job failed in the worker (crashed it max_attempts times)", ErrorDetail),
    },
)


def prepare_extract(ctx: ApiContext, body: Body[ExtractRequest], owner: str) -> Submission:
    """The extract job of a request (also the drop-in protocols' detection: api/compat/)."""
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
    settings = RenderSettings(
        api_ver=body.api_ver(ctx.settings.response_format),
        landmarks=bool(req.return_landmarks),
        data_count=len(req.images.data),
        api_errors=read.errors,
        owner=owner,
        warnings=request_warnings(req, body.unknown),
    )
    failure = request_failure(settings)
    if failure is not None:
        raise failure
    ctx.metrics.images.observe(count)
    return Submission(ExtractJob(read.accepted, options, g.request_id), settings)


@bp.post("/extract")
@documented(EXTRACT_DOC)
def extract() -> Response:
    ctx = context()
    return submit(ctx, images_body(ExtractRequest), lambda body, owner: prepare_extract(ctx, body, owner))
