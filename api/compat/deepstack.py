"""The DeepStack / CodeProject.AI face API (what Home Assistant's deepstack_face, Double Take's
deepstack detector, Blue Iris and node-red speak): multipart forms in, ``{"success": ...}`` out.

Routes, request parsing, answers and the error table of the protocol; every request becomes one of
the core's jobs (extract, enroll, recognize, verify) on the request's collection
(api/compat/common.py home_collection) or a gallery read, as /collections does it. Confidences of
recognize and match are the calibrated mapping of similarity (shared/recognition.py confidence),
so the clients' usual lines (0.45 to 0.67) fit; detection confidences are the detector's scores.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import redis
from flask import Blueprint, Response, g, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from api.auth import PROTOCOL_KEY
from api.bodies import Body
from api.collection_access import check_name
from api.compat.common import home_collection, images_request, run_job, subject_names
from api.compat.schemas import (
    DeepstackAnswer,
    DeepstackError,
    DeepstackImageForm,
    DeepstackKeyForm,
    DeepstackMatchForm,
    DeepstackRegisterForm,
    DeepstackUserForm,
)
from api.context import ApiContext, context
from api.openapi import Operation, Reply, documented
from api.routes.collections import prepare_enroll, prepare_recognize
from api.routes.extract import prepare_extract
from api.routes.verify import prepare_verify
from api.schemas import EnrollRequest, ExtractRequest, RecognizeRequest, VerifyRequest
from shared.contract import (
    DEFAULT_THRESHOLD,
    EnrollResult,
    ExtractResult,
    JobResult,
    RecognizeResult,
    VerifyResult,
)
from shared.errors import (
    CollectionForbidden,
    FaceRestError,
    InvalidApiKey,
    InvalidRequest,
    JobFailed,
    MissingApiKey,
    Overloaded,
    ResultTimeout,
)
from shared.gallery.people_subjects import delete_subject
from shared.recognition import MATCH_CONFIDENCE, confidence, similarity_for

bp = Blueprint("deepstack", __name__, url_prefix="/v1/vision/face")

KEY_FIELD = "api_key"
# register takes "image" or "image1" ... "imageN" (CodeProject.AI), in that order.
IMAGE_FIELD = re.compile(r"^image(\d*)$")
UNKNOWN = "unknown"
# DeepStack's face detection default (its docs: min_confidence 0.4 for /v1/vision/face) is lower
# than ours; a request without the field gets the detector's own default instead.
DETECT_DEFAULT = DEFAULT_THRESHOLD

# The error table: DeepStack answers bad input with 400, a bad key with 401, its own failures with
# 500; CodeProject.AI adds 403, 429 and 503. The body is always {"success": false, "error": ...}.
STATUS_BY_ERROR: dict[type[FaceRestError], int] = {
    MissingApiKey: 401,
    InvalidApiKey: 401,
    CollectionForbidden: 403,
    Overloaded: 503,  # TooManyJobs (429) is checked first, below
    ResultTimeout: 504,
    JobFailed: 500,
}


def _doc(summary: str, form: type[BaseModel], description: str = "") -> Operation:
    """A route's entry in the drop-in server's OpenAPI document (api/compat/schemas.py)."""
    return Operation(
        summary=summary,
        description=description,
        form=form,
        replies={
            200: Reply("Done", DeepstackAnswer),
            400: Reply("Bad input, an image that is no image, or no face to register", DeepstackError),
            401: Reply("API keys are on, and api_key is missing or not valid", DeepstackError),
            403: Reply("The key may not use its collection", DeepstackError),
            429: Reply("Too many jobs queued for this key", DeepstackError, retry_after=True),
            500: Reply("The job failed", DeepstackError),
            503: Reply("Overloaded, or Redis unavailable", DeepstackError, retry_after=True),
            504: Reply("No result in time", DeepstackError, retry_after=True),
        },
    )


def read_key() -> None:
    """DeepStack's key is the ``api_key`` form field (an empty one: no key)."""
    g.setdefault(PROTOCOL_KEY, request.form.get(KEY_FIELD) or None)


def answer(status: int = 200, **fields: Any) -> Response:
    """DeepStack's envelope with CodeProject.AI's ``code`` (its HTTP status in the body)."""
    body = {"success": status < 400, **fields, "code": status}
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _timing(result: JobResult) -> dict[str, Any]:
    """CodeProject.AI's timing fields: the worker's time for the job."""
    took = round(result.took_ms)
    return {"inferenceMs": took, "processMs": took}


def _form_float(name: str, default: float) -> float:
    value = request.form.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, got {value[:40]!r}") from None
    if not 0.0 <= number <= 1.0:
        raise InvalidRequest(f"{name} must be between 0 and 1, got {number}")
    return number


def _images(*names: str) -> list[bytes]:
    """The uploaded files of the named fields, in that order."""
    return [upload.read() for name in names for upload in request.files.getlist(name)]


def _numbered_images() -> list[bytes]:
    """``image``, then ``image1`` ... ``imageN`` by number."""
    fields = [(m.group(1), name) for name in request.files if (m := IMAGE_FIELD.match(name))]
    fields.sort(key=lambda field: int(field[0] or 0))
    return _images(*dict.fromkeys(name for _, name in fields))


def _box(bbox: tuple[float, float, float, float]) -> dict[str, int]:
    x1, y1, x2, y2 = (round(v) for v in bbox)
    return {"x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2}


@bp.post("")
@documented(_doc("Detect faces: boxes and detector confidence", DeepstackImageForm))
def detect() -> Response:
    ctx = context()
    threshold = _form_float("min_confidence", DETECT_DEFAULT)
    req = images_request(ExtractRequest, _images("image"), threshold=threshold, extract_embedding=False)

    def render(result: ExtractResult) -> Response:
        faces = result.images[0].faces if result.images else ()
        predictions = [{"confidence": round(f.prob, 5), **_box(f.bbox)} for f in faces]
        return _predictions(predictions, result)

    return run_job(ctx, req, lambda r, owner: prepare_extract(ctx, _body(r), owner), ExtractResult, render)


def _predictions(predictions: list[dict[str, Any]], result: JobResult) -> Response:
    """An answer with faces, and CodeProject.AI's count, message and timings."""
    count = len(predictions)
    message = f"Found {count} face{'' if count == 1 else 's'}" if count else "No faces found"
    return answer(predictions=predictions, count=count, message=message, **_timing(result))


def _userid() -> str:
    """The person a register or delete names: DeepStack's ``userid`` field, a facerest subject name."""
    userid = request.form.get("userid", "")
    if not userid:
        raise InvalidRequest("userid not specified")
    check_name("subject", userid)
    return userid


def _body(req: ExtractRequest) -> Body[ExtractRequest]:
    return Body(req, "multipart", "")


@bp.post("/register")
@documented(_doc("Register faces of a person; earlier faces stay", DeepstackRegisterForm))
def register() -> Response:
    ctx = context()
    collection = home_collection(ctx)
    userid = _userid()
    # Every image adds a face: a person's earlier faces stay (CodeProject.AI replaces them).
    req = images_request(EnrollRequest, _numbered_images())

    def render(result: EnrollResult) -> Response:
        return answer(message="face added", count=len(result.faces), **_timing(result))

    return run_job(
        ctx, req, lambda r, owner: prepare_enroll(ctx, collection, userid, r, owner), EnrollResult, render
    )


@bp.post("/recognize")
@documented(
    _doc(
        "Recognize every face",
        DeepstackImageForm,
        'userid "unknown" (confidence 0) under min_confidence (default 0.67, calibrated)',
    )
)
def recognize() -> Response:
    ctx = context()
    collection = home_collection(ctx)
    wanted = _form_float("min_confidence", MATCH_CONFIDENCE)
    images = _images("image")
    recognizer = ctx.gallery.recognizer_of(collection)
    if recognizer is None:
        # Nobody registered yet: every face is unknown (DeepStack answers so, not with an error).
        return _all_unknown(ctx, images)
    threshold = similarity_for(wanted, recognizer.key)
    req = images_request(RecognizeRequest, images, limit=1, threshold=threshold)

    def render(result: RecognizeResult) -> Response:
        faces = result.images[0].faces if result.images else []
        predictions = [
            {
                "userid": face.subject or UNKNOWN,
                # DeepStack's unknown faces carry 0, not the best stranger's score.
                "confidence": 0.0
                if face.subject is None or face.similarity is None
                else confidence(face.similarity, result.recognizer.key),
                **_box(face.bbox),
            }
            for face in faces
        ]
        return _predictions(predictions, result)

    return run_job(
        ctx, req, lambda r, owner: prepare_recognize(ctx, collection, r, owner), RecognizeResult, render
    )


def _all_unknown(ctx: ApiContext, images: list[bytes]) -> Response:
    req = images_request(ExtractRequest, images, extract_embedding=False)

    def render(result: ExtractResult) -> Response:
        faces = result.images[0].faces if result.images else ()
        predictions = [{"userid": UNKNOWN, "confidence": 0.0, **_box(f.bbox)} for f in faces]
        return _predictions(predictions, result)

    return run_job(ctx, req, lambda r, owner: prepare_extract(ctx, _body(r), owner), ExtractResult, render)


@bp.post("/list")
@documented(_doc("The registered names", DeepstackKeyForm))
def list_faces() -> Response:
    ctx = context()
    collection = home_collection(ctx)
    names = subject_names(ctx, collection)
    return answer(faces=names, count=len(names))


@bp.post("/delete")
@documented(_doc("Delete a person and all their faces", DeepstackUserForm))
def delete() -> Response:
    ctx = context()
    collection = home_collection(ctx)
    userid = _userid()
    # DeepStack answers success for a name it does not know, as for one it deleted.
    known = ctx.gallery.recognizer_of(collection) is not None
    deleted = delete_subject(ctx.gallery, ctx.people, collection, userid) if known else 0
    return answer(count=deleted)


@bp.post("/match")
@documented(_doc("Compare the largest face of two images (calibrated similarity)", DeepstackMatchForm))
def match() -> Response:
    ctx = context()
    images = _images("image1") + _images("image2")
    if len(images) != 2:
        raise InvalidRequest("match takes two images, image1 and image2")
    req = images_request(VerifyRequest, images)

    def render(result: VerifyResult) -> Response:
        return answer(similarity=confidence(result.similarity, result.recognizer.key), **_timing(result))

    return run_job(ctx, req, lambda r, owner: prepare_verify(ctx, r, owner), VerifyResult, render)


def _status_of(exc: FaceRestError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return 400  # bad input of every kind: a bad image, no face, a bad name or field


@bp.errorhandler(FaceRestError)
def _domain(exc: FaceRestError) -> Response:
    status = 429 if exc.code == "too_many_jobs" else _status_of(exc)
    response = answer(status, error=exc.message)
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    elif status in (503, 504):
        response.headers["Retry-After"] = str(context().settings.retry_after_s)
    return response


@bp.errorhandler(redis.ConnectionError)
@bp.errorhandler(redis.TimeoutError)
@bp.errorhandler(redis.ReadOnlyError)
def _redis_unreachable(exc: redis.RedisError) -> Response:
    response = answer(503, error="the job store (Redis) is unavailable; retry later")
    response.headers["Retry-After"] = str(context().settings.retry_after_s)
    return response


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> Response:
    return answer(400, error="; ".join(str(err["msg"]) for err in exc.errors()))


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    return answer(exc.code or 500, error=exc.description or exc.name)
