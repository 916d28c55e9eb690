"""POST /draw_detections and /multipart/draw_detections: a photo with its faces drawn on it.

InsightFace-REST's debugging view: the first image of the request goes through the worker as a
detection-only job (keypoints always, the 106 landmarks and gender/age when asked), and the API
draws the faces on it (api/drawing.py). JSON and MessagePack bodies answer a PNG, the multipart
upload a JPEG, as InsightFace-REST does.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Response, g

from api.availability import check_request
from api.bodies import read_body, read_images
from api.context import ApiContext, context
from api.drawing import MEDIA_TYPES, DrawStyle, ImageFormat, draw, encode, upright
from api.openapi import Operation, Reply, Upload, documented
from api.schemas import DrawRequest, ErrorDetail, Images
from api.submit import IDEMPOTENCY_DOC, QUEUED_REPLIES, Flags, Read, Submission, submit
from shared.contract import ExtractJob, ExtractResult, JobResult, RenderSettings
from shared.errors import InvalidRequest, from_info

bp = Blueprint("draw", __name__)


def _replies(media_type: str) -> dict[int, Reply]:
    return {
        200: Reply("The first image with its faces drawn", media_type=media_type),
        400: Reply("Malformed body, no image, or a model that is not loaded", ErrorDetail),
        409: QUEUED_REPLIES[409],
        413: QUEUED_REPLIES[413],
        422: Reply("Invalid field, image or image URL", ErrorDetail),
        503: Reply("Too many jobs queued, or Redis unavailable", ErrorDetail, retry_after=True),
        504: Reply("No result within the synchronous timeout", ErrorDetail, retry_after=True),
    }


DRAW_DOC = Operation(
    summary="Draw the faces found on the first image (PNG)",
    request=DrawRequest,
    msgpack_request=True,
    upload=Upload(multiple=False),
    headers=(IDEMPOTENCY_DOC,),
    replies=_replies("image/png"),
)
MULTIPART_DRAW_DOC = Operation(
    summary="Draw the faces found on an uploaded image (JPEG)",
    request=DrawRequest,
    upload=Upload(multiple=False),
    multipart_only=True,
    headers=(IDEMPOTENCY_DOC,),
    replies=_replies("image/jpeg"),
)


@dataclass(frozen=True, slots=True)
class DrawInput:
    """A draw request cut to its first image, and that image's bytes (the job's input, and what
    the faces are drawn on)."""

    request: DrawRequest
    image: bytes


@bp.post("/draw_detections")
@documented(DRAW_DOC)
def draw_detections() -> Response:
    return _draw("PNG")


@bp.post("/multipart/draw_detections")
@documented(MULTIPART_DRAW_DOC)
def multipart_draw_detections() -> Response:
    return _draw("JPEG")


def _read(ctx: ApiContext) -> Read[DrawInput]:
    """The body, its first image read (also for a retry with the same Idempotency-Key, which
    answers from the first request's job but draws on this request's copy of the image)."""
    body = read_body(DrawRequest)
    req = body.request
    if req.images.count == 0:
        raise InvalidRequest("no image: send images.data, images.urls or a file field")
    # The first image only, as InsightFace-REST draws only its first.
    first = Images(data=req.images.data[:1], urls=[] if req.images.data else req.images.urls[:1])
    req = req.model_copy(update={"images": first})
    read = read_images(ctx, req)
    if read.errors:
        raise from_info(read.errors[0])
    return Read(DrawInput(req, read.accepted[0]), Flags(run_async=False, msgpack=False), body.digest)


def _prepare(ctx: ApiContext, got: DrawInput, owner: str) -> Submission:
    options = got.request.options(ctx.settings.max_faces)
    check_request(options, ctx.workers.online())
    settings = RenderSettings(
        api_ver="2", landmarks=True, data_count=len(got.request.images.data), owner=owner
    )
    ctx.metrics.images.observe(1)
    return Submission(ExtractJob([got.image], options, g.request_id), settings)


def _picture(ctx: ApiContext, image_format: ImageFormat, got: DrawInput, result: JobResult) -> Response:
    if not isinstance(result, ExtractResult):  # the job _prepare makes is an extract job
        raise TypeError(f"{type(result).__name__}, not an extract result")
    (image,) = result.images
    if image.error is not None:
        raise from_info(image.error)
    req = got.request
    style = DrawStyle(req.draw_landmarks, req.draw_scores, req.draw_sizes, req.draw_ga)
    picture = draw(upright(got.image, ctx.settings.max_image_pixels), image.faces, style)
    return Response(encode(picture, image_format), mimetype=MEDIA_TYPES[image_format])


def _draw(image_format: ImageFormat) -> Response:
    ctx = context()
    return submit(
        ctx,
        lambda: _read(ctx),
        lambda got, owner: _prepare(ctx, got, owner),
        answer=lambda got, result: _picture(ctx, image_format, got, result),
    )
