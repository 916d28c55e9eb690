"""POST /draw_detections and /multipart/draw_detections: a photo with its faces drawn on it.

InsightFace-REST's debugging view: the first image of the request goes through the worker as a
detection-only job (keypoints always, the 106 landmarks and gender/age when asked), and the API
draws the faces on it (api/drawing.py). JSON and MessagePack bodies answer a PNG, the multipart
upload a JPEG, as InsightFace-REST does.
"""

from __future__ import annotations

import uuid

from flask import Blueprint, Response, g

from api.auth import request_owner
from api.availability import check_request
from api.bodies import read_body, read_images
from api.context import context
from api.drawing import MEDIA_TYPES, DrawStyle, ImageFormat, draw, encode, upright
from api.openapi import Operation, Reply, Upload, documented
from api.schemas import DrawRequest, ErrorDetail, Images
from api.submit import check_queue, send, wait_result
from shared.contract import ExtractJob, ExtractResult, RenderSettings
from shared.errors import InvalidRequest, from_info

bp = Blueprint("draw", __name__)


def _replies(media_type: str) -> dict[int, Reply]:
    return {
        200: Reply("The first image with its faces drawn", media_type=media_type),
        400: Reply("Malformed body, no image, or a model that is not loaded", ErrorDetail),
        413: Reply("A size limit was exceeded", ErrorDetail),
        422: Reply("Invalid field, image or image URL", ErrorDetail),
        503: Reply("Too many jobs queued, or Redis unavailable", ErrorDetail, retry_after=True),
        504: Reply("No result within the synchronous timeout", ErrorDetail, retry_after=True),
    }


DRAW_DOC = Operation(
    summary="Draw the faces found on the first image (PNG)",
    request=DrawRequest,
    msgpack_request=True,
    upload=Upload(multiple=False),
    replies=_replies("image/png"),
)
MULTIPART_DRAW_DOC = Operation(
    summary="Draw the faces found on an uploaded image (JPEG)",
    request=DrawRequest,
    upload=Upload(multiple=False),
    multipart_only=True,
    replies=_replies("image/jpeg"),
)


@bp.post("/draw_detections")
@documented(DRAW_DOC)
def draw_detections() -> Response:
    return _draw("PNG")


@bp.post("/multipart/draw_detections")
@documented(MULTIPART_DRAW_DOC)
def multipart_draw_detections() -> Response:
    return _draw("JPEG")


def _draw(image_format: ImageFormat) -> Response:
    ctx = context()
    check_queue(ctx)
    req = read_body(DrawRequest).request
    if req.images.count == 0:
        raise InvalidRequest("no image: send images.data, images.urls or a file field")
    # The first image only, as InsightFace-REST draws only its first.
    first = Images(data=req.images.data[:1], urls=[] if req.images.data else req.images.urls[:1])
    req = req.model_copy(update={"images": first})
    options = req.options(ctx.settings.max_faces)
    check_request(options, ctx.workers.online())
    read = read_images(ctx, req)
    if read.errors:
        raise from_info(read.errors[0])
    job_id = uuid.uuid4().hex
    settings = RenderSettings(
        api_ver="2", landmarks=True, data_count=len(first.data), owner=request_owner(ctx.api_keys)
    )
    ctx.store.create(job_id, ExtractJob(read.accepted, options, g.request_id), settings, None)
    ctx.metrics.images.observe(1)
    send(ctx, job_id, idempotent=False)
    result, _ = wait_result(ctx, job_id)
    if not isinstance(result, ExtractResult):  # the job stored above is an extract job
        raise TypeError(f"job {job_id}: {type(result).__name__}, not an extract result")
    (image,) = result.images
    if image.error is not None:
        raise from_info(image.error)
    style = DrawStyle(req.draw_landmarks, req.draw_scores, req.draw_sizes, req.draw_ga)
    picture = draw(upright(read.accepted[0], ctx.settings.max_image_pixels), image.faces, style)
    return Response(encode(picture, image_format), mimetype=MEDIA_TYPES[image_format])
