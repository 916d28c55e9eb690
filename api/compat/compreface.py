"""The CompreFace REST API (Exadel's SDKs for Python, JavaScript and .NET; Double Take's
compreface detector): recognition (faces, subjects, recognize), verification and detection.

Routes, request parsing, answers and the error table of the protocol. The ``x-api-key`` header
picks the collection: with API keys on, the key's first collection (else
FACEREST_COMPAT_COLLECTION); with keys off, the key itself names the collection (so each
CompreFace "service key" is its own face collection, as in CompreFace). Every request becomes one
of the core's jobs or a gallery read, as /collections does it. ``similarity`` is the calibrated
mapping of our cosine (shared/recognition.py confidence), the same as DeepStack's confidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import msgspec
import numpy as np
import orjson
import redis
from flask import Blueprint, Response, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import HTTPException

from api.auth import request_key
from api.bodies import Body, json_problem
from api.collection_access import check_face_id, check_name, collection_access
from api.compat.common import home_collection, images_request, run_job, subject_names
from api.compat.schemas import (
    COUNT_QUERY,
    DET_QUERY,
    LIMIT_QUERY,
    PAGE_QUERIES,
    PLUGINS_QUERY,
    SUBJECT_QUERY,
    CompreFaceDeleted,
    CompreFaceError,
    CompreFaceFacePage,
    CompreFaceFaceVerification,
    CompreFaceFileBody,
    CompreFaceFileForm,
    CompreFaceImage,
    CompreFaceResult,
    CompreFaceSubject,
    CompreFaceSubjectBody,
    CompreFaceSubjects,
    CompreFaceUpdated,
    CompreFaceVerification,
    CompreFaceVerifyBody,
    CompreFaceVerifyForm,
)
from api.context import ApiContext, context
from api.openapi import Operation, Query, Reply, documented
from api.routes.collections import prepare_enroll, prepare_recognize
from api.routes.extract import prepare_extract
from api.routes.verify import prepare_verify
from api.schemas import EnrollRequest, ExtractRequest, RecognizeRequest, VerifyRequest
from api.submit import Submission
from shared.contract import (
    DEFAULT_THRESHOLD,
    EnrollResult,
    ExtractResult,
    Face,
    RecognizedFace,
    RecognizeJob,
    RecognizeResult,
    VerifyJob,
    VerifyResult,
)
from shared.errors import (
    CollectionForbidden,
    CollectionNotFound,
    FaceNotFound,
    FaceRestError,
    InvalidApiKey,
    InvalidField,
    InvalidImage,
    InvalidRequest,
    JobFailed,
    LowQuality,
    MissingApiKey,
    NoFace,
    Overloaded,
    ResultTimeout,
    SeveralFaces,
    SubjectExists,
    SubjectNotFound,
    TooManyJobs,
)
from shared.gallery import StoredFace, people_subjects
from shared.recognition import MAX_LIMIT, confidence

bp = Blueprint("compreface", __name__, url_prefix="/api/v1")

FILE_FIELD = "file"
NO_FACE_MESSAGE = "No face is found in the given image"  # CompreFace's words for its code 28
MAX_PAGE_SIZE = 1000
MAX_INT = 2**31 - 1  # a number's range only: the core checks limits (max_faces: prepare_extract)
DEFAULT_PAGE_SIZE = 20  # CompreFace's page of GET /faces
# face_plugins facerest backs: age and gender (the genderage model), landmarks (the detector's 5
# keypoints), calculator (the embedding), pose (face quality's yaw/pitch/roll from the keypoints:
# worker/quality.py). mask is not served (no model for it).
PLUGINS = frozenset({"age", "gender", "landmarks", "calculator", "pose"})


# Bad requests CompreFace's error table names apart; each is facerest's invalid_request elsewhere.


class EmptyField(InvalidRequest):
    """A required field of a JSON body is missing or empty."""


class MissingParameter(InvalidRequest):
    """A required query parameter is missing."""


class MissingPart(InvalidRequest):
    """A required file of a multipart form is missing."""


class IncorrectArgument(InvalidRequest):
    """A query parameter that is no number, or out of its range."""


# CompreFace's error table, (HTTP status, code), where facerest has the same condition (the
# codes and statuses of CompreFace's CommonExceptionCode; a CompreFace "model" is the face
# collection a key names). The nearest class in an error's ancestry answers; anything else is
# (400, 0), CompreFace's UNDEFINED, or the status below with code 0.
OTHER_CODE = 0
ERROR_TABLE: dict[type[FaceRestError], tuple[int, int]] = {
    EmptyField: (400, 5),  # EMPTY_REQUIRED_FIELD
    InvalidApiKey: (404, 10),  # MODEL_NOT_FOUND: no face collection for this key
    CollectionNotFound: (404, 10),  # MODEL_NOT_FOUND
    FaceNotFound: (404, 11),  # IMAGE_NOT_FOUND: an image id is a face id
    InvalidField: (400, 26),  # VALIDATION_CONSTRAINT_VIOLATION: a name or id out of its rule
    MissingApiKey: (400, 20),  # MISSING_REQUEST_HEADER (x-api-key)
    InvalidImage: (400, 21),  # UNAVAILABLE_FILE_EXTENSION: not an image format facerest reads
    NoFace: (400, 28),  # NO_FACES_FOUND
    SeveralFaces: (400, 31),  # TOO_MANY_FACES
    LowQuality: (400, OTHER_CODE),  # no such condition in CompreFace
    MissingParameter: (400, 33),  # MISSING_REQUEST_PARAMETER
    MissingPart: (400, 34),  # MISSING_REQUEST_PART
    IncorrectArgument: (400, 36),  # INCORRECT_ARGUMENT
    JobFailed: (500, 41),  # FACES_SERVICE_EXCEPTION: the service that embeds faces failed
    SubjectNotFound: (404, 42),  # SUBJECT_NOT_FOUND
    SubjectExists: (400, 43),  # SUBJECT_ALREADY_EXISTS
    # facerest's own conditions, with code 0: the status tells them apart.
    CollectionForbidden: (403, OTHER_CODE),
    TooManyJobs: (429, OTHER_CODE),
    Overloaded: (503, OTHER_CODE),
    ResultTimeout: (504, OTHER_CODE),
}
VALIDATION_CODE = 26  # VALIDATION_CONSTRAINT_VIOLATION: a field out of its allowed values


# The routes' entries in the drop-in server's OpenAPI document (api/compat/schemas.py).
ERROR_REPLIES = {
    400: Reply("Bad input; code 28: no face (docs/integrations.md has the code table)", CompreFaceError),
    403: Reply("The key may not use its collection", CompreFaceError),
    404: Reply("Unknown key or collection (10), face (11) or subject (42)", CompreFaceError),
    429: Reply("Too many jobs queued for this key", CompreFaceError, retry_after=True),
    500: Reply("The job failed (41)", CompreFaceError),
    503: Reply("Overloaded, or Redis unavailable", CompreFaceError, retry_after=True),
}


def _doc(
    summary: str,
    ok: Reply,
    query: tuple[Query, ...] = (),
    image: bool = False,
    form: type[BaseModel] | None = None,
    body: object = None,
    status: int = 200,
) -> Operation:
    """``image``: one image in, as a multipart file or base64 JSON (``{"file"}``)."""
    if image:
        form, body = CompreFaceFileForm, CompreFaceFileBody
    return Operation(
        summary=summary, replies={status: ok, **ERROR_REPLIES}, query=query, form=form, request=body
    )


def _json(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _collection(ctx: ApiContext) -> str:
    key = request_key()
    if ctx.api_keys.enabled or not key:
        return home_collection(ctx)
    collection_access(ctx, key)  # a key that is no valid collection name is refused (422 -> 400)
    return key


# Requests: an image is a multipart file, or base64 in a JSON body.


def _json_body() -> dict[str, Any]:
    """A JSON body as a map (an empty body: an empty map)."""
    try:
        body = orjson.loads(request.get_data() or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {json_problem(exc)}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the JSON body must be an object")
    return body


def _json_text(name: str, what: str) -> str:
    value = _json_body().get(name) if request.mimetype == "application/json" else None
    if not isinstance(value, str) or not value:
        raise EmptyField(f"the JSON body needs {name!r}: {what}")
    return value


def _image(field: str = FILE_FIELD) -> bytes | str:
    """An image: a multipart file, or base64 text in a JSON body (read_images decodes it)."""
    if request.mimetype == "application/json":
        return _json_text(field, "the image in base64")
    upload = request.files.get(field)
    if upload is None:
        raise MissingPart(f"the form needs a file in {field!r}")
    data: bytes = upload.read()
    return data


def _float_arg(name: str, default: float) -> float:
    value = request.args.get(name, "")
    try:
        return default if value == "" else float(value)
    except ValueError:
        raise IncorrectArgument(f"{name} must be a number, got {value[:40]!r}") from None


def _int_arg(name: str, default: int, highest: int) -> int:
    value = request.args.get(name, "")
    try:
        number = default if value == "" else int(value)
    except ValueError:
        raise IncorrectArgument(f"{name} must be an integer, got {value[:40]!r}") from None
    if not 0 <= number <= highest:
        raise IncorrectArgument(f"{name} must be between 0 and {highest}, got {number}")
    return number


def _plugins() -> frozenset[str]:
    asked = {p.strip() for p in request.args.get("face_plugins", "").split(",") if p.strip()}
    return frozenset(asked & PLUGINS)


# Answers.


def _box(bbox: tuple[float, float, float, float], probability: float | None) -> dict[str, Any]:
    x1, y1, x2, y2 = (round(v) for v in bbox)
    return {"probability": probability, "x_min": x1, "y_min": y1, "x_max": x2, "y_max": y2}


def _attributes(face: Face | RecognizedFace, plugins: frozenset[str], took_ms: float) -> dict[str, Any]:
    """What the face_plugins asked for, in CompreFace's shapes."""
    out: dict[str, Any] = {"execution_time": {"detector": round(took_ms, 1)}}
    if "age" in plugins and face.age is not None:
        # Our age model gives years, not CompreFace's bracket: a bracket of one year.
        years = round(face.age)
        out["age"] = {"probability": None, "high": years, "low": years}
    if "gender" in plugins and face.gender is not None:
        out["gender"] = {"probability": face.gender_score, "value": face.gender}
    if "landmarks" in plugins and face.landmarks is not None:
        out["landmarks"] = [[round(x), round(y)] for x, y in face.landmarks]
    if "pose" in plugins and face.quality is not None:
        pose = face.quality
        out["pose"] = {"pitch": pose.pitch, "roll": pose.roll, "yaw": pose.yaw}
    if "calculator" in plugins and face.vec is not None:
        out["embedding"] = np.frombuffer(face.vec, dtype=np.float32).round(6).tolist()
    return out


def _largest(faces: list[RecognizedFace], limit: int) -> list[RecognizedFace]:
    """CompreFace's ``limit``: the ``limit`` largest faces (0: all), in their order."""
    if not limit or len(faces) <= limit:
        return faces
    areas = sorted(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1]), reverse=True)
    keep = {id(f) for f in areas[:limit]}
    return [f for f in faces if id(f) in keep]


def _no_face_if_empty(faces: Sequence[object]) -> None:
    if not faces:
        raise NoFace(NO_FACE_MESSAGE)


# Recognition: faces.


@bp.post("/recognition/faces")
@documented(
    _doc(
        "Add a face of a subject (the largest face)",
        Reply("Added", CompreFaceImage),
        (SUBJECT_QUERY, DET_QUERY),
        image=True,
    )
)
def add_face() -> Response:
    ctx = context()
    collection = _collection(ctx)
    subject = request.args.get("subject", "")
    if not subject:
        raise MissingParameter("subject is required: ?subject=NAME")
    check_name("subject", subject)
    det = _float_arg("det_prob_threshold", DEFAULT_THRESHOLD)
    req = images_request(EnrollRequest, [_image()], det_threshold=det)

    def render(result: EnrollResult) -> Response:
        return _json({"image_id": result.faces[0].id, "subject": subject})

    return run_job(
        ctx, req, lambda r, owner: prepare_enroll(ctx, collection, subject, r, owner), EnrollResult, render
    )


@bp.get("/recognition/faces")
@documented(_doc("The collection's faces, paged", Reply("A page", CompreFaceFacePage), PAGE_QUERIES))
def list_faces() -> Response:
    ctx = context()
    collection = _collection(ctx)
    page = _int_arg("page", 0, 2**31)
    size = max(1, _int_arg("size", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))
    subject = request.args.get("subject") or None
    shown: list[StoredFace] = []
    total = 0
    if ctx.gallery.recognizer_of(collection) is not None:
        if subject:  # one subject's faces: as many as one person has, read at once
            check_name("subject", subject)
            faces = ctx.gallery.faces(collection, subject)
            shown, total = faces[page * size : (page + 1) * size], len(faces)
        else:  # the collection's: one page read, and the count
            info = ctx.gallery.collection(collection)
            total = 0 if info is None else info.faces
            shown = ctx.gallery.faces_page(collection, page * size, size)
    return _json(
        {
            "faces": [{"image_id": face.id, "subject": face.subject} for face in shown],
            "page_number": page,
            "page_size": size,
            "total_pages": -(-total // size),
            "total_elements": total,
        }
    )


@bp.delete("/recognition/faces")
@documented(
    _doc("Delete a subject's faces, or all faces", Reply("Deleted", CompreFaceDeleted), (SUBJECT_QUERY,))
)
def delete_faces() -> Response:
    ctx = context()
    collection = _collection(ctx)
    subject = request.args.get("subject")
    if ctx.gallery.recognizer_of(collection) is None:
        return _json({"deleted": 0})
    if subject:
        check_name("subject", subject)
        return _json(
            {"deleted": people_subjects.delete_subject(ctx.gallery, ctx.people, collection, subject)}
        )
    info = ctx.gallery.collection(collection)
    people_subjects.delete_gallery(ctx.gallery, ctx.people, collection)
    return _json({"deleted": 0 if info is None else info.faces})


def _enrolled_face(ctx: ApiContext, collection: str, image_id: str) -> StoredFace:
    """An enrolled face by its id (CompreFace's image_id), with its subject."""
    check_face_id(image_id)
    face = ctx.gallery.face(collection, image_id) if ctx.gallery.recognizer_of(collection) else None
    if face is None:
        raise FaceNotFound(f"no face {image_id!r}")
    return face


@bp.delete("/recognition/faces/<image_id>")
@documented(_doc("Delete one face", Reply("Deleted", CompreFaceImage)))
def delete_face(image_id: str) -> Response:
    ctx = context()
    collection = _collection(ctx)
    subject = _enrolled_face(ctx, collection, image_id).subject
    if not people_subjects.delete_enrolled_face(ctx.gallery, ctx.people, collection, image_id):
        raise FaceNotFound(f"no face {image_id!r}")
    return _json({"image_id": image_id, "subject": subject})


@bp.get("/recognition/faces/<image_id>/img")
@documented(_doc("The face as kept: its aligned 112x112 crop", Reply("JPEG", media_type="image/jpeg")))
def face_image(image_id: str) -> Response:
    """The enrolled face as stored: its aligned 112x112 crop (CompreFace keeps the whole photo)."""
    ctx = context()
    collection = _collection(ctx)
    check_face_id(image_id)
    crop = ctx.gallery.crop(collection, image_id) if ctx.gallery.recognizer_of(collection) else None
    if crop is None:
        raise FaceNotFound(f"no face {image_id!r}")
    return Response(crop, mimetype="image/jpeg")


@bp.post("/recognition/faces/<image_id>/verify")
@documented(
    _doc(
        "Compare an image's largest face with this face",
        Reply("Compared", CompreFaceFaceVerification),
        (DET_QUERY,),
        image=True,
    )
)
def verify_with_face(image_id: str) -> Response:
    """The largest face of the image against that enrolled face (the core's 1:1 verification of
    a subject, narrowed to one of its faces: VerifyJob.face_id)."""
    ctx = context()
    collection = _collection(ctx)
    subject = _enrolled_face(ctx, collection, image_id).subject
    det = _float_arg("det_prob_threshold", DEFAULT_THRESHOLD)
    req = images_request(VerifyRequest, [_image()], det_threshold=det, collection=collection, subject=subject)

    def prepare(r: VerifyRequest, owner: str) -> Submission:
        submission = prepare_verify(ctx, r, owner)
        job = submission.job
        assert isinstance(job, VerifyJob)
        return replace(submission, job=msgspec.structs.replace(job, face_id=image_id))

    def render(result: VerifyResult) -> Response:
        similarity = confidence(result.similarity, result.recognizer.key)
        face = {"box": _box(result.faces[0], None), "subject": subject, "similarity": similarity}
        return _json({"result": [face]})

    return run_job(ctx, req, prepare, VerifyResult, render)


# Recognition: subjects. A subject exists in the gallery while it has faces; POST names one
# without storing anything (its first face creates it).


@bp.post("/recognition/subjects")
@documented(
    _doc(
        "Name a subject (its first face creates it)",
        Reply("Named", CompreFaceSubject),
        body=CompreFaceSubjectBody,
        status=201,
    )
)
def add_subject() -> Response:
    ctx = context()
    _collection(ctx)
    subject = _json_text("subject", "the subject's name")
    check_name("subject", subject)
    return _json({"subject": subject}, 201)


@bp.get("/recognition/subjects")
@documented(_doc("The subjects", Reply("Subjects", CompreFaceSubjects)))
def list_subjects() -> Response:
    ctx = context()
    collection = _collection(ctx)
    names = subject_names(ctx, collection)
    return _json({"subjects": names})


@bp.put("/recognition/subjects/<subject>")
@documented(_doc("Rename a subject", Reply("Renamed", CompreFaceUpdated), body=CompreFaceSubjectBody))
def rename_subject(subject: str) -> Response:
    ctx = context()
    collection = _collection(ctx)
    check_name("subject", subject)
    new_name = _json_text("subject", "the subject's name")
    check_name("subject", new_name)
    if ctx.gallery.recognizer_of(collection) is None:
        raise SubjectNotFound(f"no subject {subject!r}")
    if new_name != subject and not people_subjects.rename_subject(
        ctx.gallery, ctx.people, collection, subject, new_name
    ):
        raise SubjectNotFound(f"no subject {subject!r}")
    return _json({"updated": True})


@bp.delete("/recognition/subjects/<subject>")
@documented(_doc("Delete a subject and its faces", Reply("Deleted", CompreFaceSubject)))
def delete_subject(subject: str) -> Response:
    ctx = context()
    collection = _collection(ctx)
    check_name("subject", subject)
    known = ctx.gallery.recognizer_of(collection) is not None
    deleted = people_subjects.delete_subject(ctx.gallery, ctx.people, collection, subject) if known else 0
    if not deleted:
        raise SubjectNotFound(f"no subject {subject!r}")
    return _json({"subject": subject})


@bp.delete("/recognition/subjects")
@documented(_doc("Delete every subject", Reply("Deleted", CompreFaceDeleted)))
def delete_subjects() -> Response:
    ctx = context()
    collection = _collection(ctx)
    info = ctx.gallery.collection(collection)
    if info is None:
        return _json({"deleted": 0})
    people_subjects.delete_gallery(ctx.gallery, ctx.people, collection)
    return _json({"deleted": info.subjects})


# Recognize, verify, detect.


@bp.post("/recognition/recognize")
@documented(
    _doc(
        "Recognize faces",
        Reply("Faces and subjects", CompreFaceResult),
        (LIMIT_QUERY, COUNT_QUERY, DET_QUERY, PLUGINS_QUERY),
        image=True,
    )
)
def recognize() -> Response:
    ctx = context()
    collection = _collection(ctx)
    image = _image()
    limit = _int_arg("limit", 0, MAX_INT)
    count = _int_arg("prediction_count", 1, MAX_LIMIT)
    det = _float_arg("det_prob_threshold", DEFAULT_THRESHOLD)
    plugins = _plugins()
    ga = bool(plugins & {"age", "gender"})
    landmarks = "landmarks" in plugins
    if ctx.gallery.recognizer_of(collection) is None:
        # No subject yet: the faces, each with no subject (CompreFace answers so, not with an error).
        return _detect(ctx, image, det, limit, plugins, with_subjects=True)
    req = images_request(
        RecognizeRequest,
        [image],
        det_threshold=det,
        limit=max(1, count),
        extract_ga=ga,
        return_landmarks=landmarks,
        return_quality="pose" in plugins,
    )

    def prepare(r: RecognizeRequest, owner: str) -> Submission:
        submission = prepare_recognize(ctx, collection, r, owner)
        if "calculator" not in plugins:
            return submission
        # The embeddings the worker computes anyway, returned (RecognizedFace.vec): no field of
        # /collections' request asks for them, so the drop-in sets the job's option itself.
        job = submission.job
        assert isinstance(job, RecognizeJob)
        options = msgspec.structs.replace(job.options, extract_embedding=True)
        return replace(submission, job=msgspec.structs.replace(job, options=options))

    def render(result: RecognizeResult) -> Response:
        faces = _largest(result.images[0].faces if result.images else [], limit)
        _no_face_if_empty(faces)
        key = result.recognizer.key
        return _json(
            {
                "result": [
                    {
                        "box": _box(face.bbox, round(face.prob, 5)),
                        "subjects": [
                            {"subject": m.subject, "similarity": confidence(m.similarity, key)}
                            for m in face.matches[:count]
                        ],
                        **_attributes(face, plugins, result.took_ms),
                    }
                    for face in faces
                ]
            }
        )

    return run_job(ctx, req, prepare, RecognizeResult, render)


@bp.post("/verification/verify")
@documented(
    _doc(
        "Compare the largest faces of two images",
        Reply("Compared", CompreFaceVerification),
        (DET_QUERY,),
        form=CompreFaceVerifyForm,
        body=CompreFaceVerifyBody,
    )
)
def verify() -> Response:
    ctx = context()
    det = _float_arg("det_prob_threshold", DEFAULT_THRESHOLD)
    req = images_request(VerifyRequest, [_image("source_image"), _image("target_image")], det_threshold=det)

    def render(result: VerifyResult) -> Response:
        similarity = confidence(result.similarity, result.recognizer.key)
        return _json(
            {
                "result": [
                    {
                        "source_image_face": {"box": _box(result.faces[0], None)},
                        "face_matches": [{"box": _box(result.faces[1], None), "similarity": similarity}],
                    }
                ]
            }
        )

    return run_job(ctx, req, lambda r, owner: prepare_verify(ctx, r, owner), VerifyResult, render)


@bp.post("/detection/detect")
@documented(
    _doc(
        "Detect faces", Reply("Faces", CompreFaceResult), (LIMIT_QUERY, DET_QUERY, PLUGINS_QUERY), image=True
    )
)
def detect() -> Response:
    ctx = context()
    image = _image()
    limit = _int_arg("limit", 0, MAX_INT)
    det = _float_arg("det_prob_threshold", DEFAULT_THRESHOLD)
    return _detect(ctx, image, det, limit, _plugins(), with_subjects=False)


def _detect(
    ctx: ApiContext,
    image: bytes | str,
    det: float,
    limit: int,
    plugins: frozenset[str],
    with_subjects: bool,
) -> Response:
    req = images_request(
        ExtractRequest,
        [image],
        threshold=det,
        limit_faces=limit,
        extract_embedding="calculator" in plugins,
        extract_ga=bool(plugins & {"age", "gender"}),
        return_landmarks="landmarks" in plugins,
        return_quality="pose" in plugins,
    )

    def render(result: ExtractResult) -> Response:
        faces = list(result.images[0].faces) if result.images else []
        _no_face_if_empty(faces)
        subjects: dict[str, list[object]] = {"subjects": []} if with_subjects else {}
        return _json(
            {
                "result": [
                    {
                        "box": _box(face.bbox, round(face.prob, 5)),
                        **subjects,
                        **_attributes(face, plugins, result.took_ms),
                    }
                    for face in faces
                ]
            }
        )

    body: Body[ExtractRequest] = Body(req, "multipart", "")
    return run_job(ctx, req, lambda _, owner: prepare_extract(ctx, body, owner), ExtractResult, render)


# Errors: {"message", "code"} with CompreFace's code and status (ERROR_TABLE).


def _error(status: int, message: str, code: int = OTHER_CODE) -> Response:
    return _json({"message": message, "code": code}, status)


def status_and_code(exc: FaceRestError) -> tuple[int, int]:
    for kind in type(exc).__mro__:
        if kind in ERROR_TABLE:
            return ERROR_TABLE[kind]
    return 400, OTHER_CODE  # bad input of every other kind


@bp.errorhandler(FaceRestError)
def _domain(exc: FaceRestError) -> Response:
    status, code = status_and_code(exc)
    response = _error(status, NO_FACE_MESSAGE if isinstance(exc, NoFace) else exc.message, code)
    if isinstance(exc, Overloaded):
        response.headers["Retry-After"] = str(exc.retry_after_s)
    elif status in (503, 504):
        response.headers["Retry-After"] = str(context().settings.retry_after_s)
    return response


@bp.errorhandler(ValidationError)
def _validation(exc: ValidationError) -> Response:
    return _error(400, "; ".join(str(err["msg"]) for err in exc.errors()), VALIDATION_CODE)


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Response:
    return _error(exc.code or 500, exc.description or exc.name)


@bp.errorhandler(redis.ConnectionError)
@bp.errorhandler(redis.TimeoutError)
@bp.errorhandler(redis.ReadOnlyError)
def _redis_unreachable(exc: redis.RedisError) -> Response:
    response = _error(503, "the job store (Redis) is unavailable; retry later")
    response.headers["Retry-After"] = str(context().settings.retry_after_s)
    return response
