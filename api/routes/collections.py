"""Collections of subjects: enroll (POST faces), recognize (1:N, open set), list, delete, reindex,
compact.

Enroll, recognize, reindex and compact are jobs (the worker embeds, then writes or searches the
gallery; a compaction can take long);
listing and deleting read and write the gallery here. Names follow shared/recognition.py.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, g, request

from api.auth import request_key
from api.bodies import parse, wire_of
from api.collection_access import (
    RECOGNIZER_CONFLICT,
    all_or_none,
    check_face_id,
    check_name,
    check_workers,
    collection_access,
    existing,
    images_of,
)
from api.context import ApiContext, context
from api.openapi import Operation, Query, Reply, documented
from api.query import int_arg
from api.render import encode, thumbnail_url, wants_msgpack
from api.schemas import (
    CollectionBody,
    CollectionJobRequest,
    CollectionsBody,
    DeletedBody,
    EnrollBody,
    EnrollRequest,
    ErrorDetail,
    JobAccepted,
    RecognizeBody,
    RecognizeRequest,
    RenamedBody,
    RenameRequest,
    SubjectFacesBody,
    SubjectsBody,
)
from api.submit import (
    UNSUPPORTED_MEDIA_TYPE,
    Flags,
    Read,
    Submission,
    images_body,
    queued_operation,
    raw_digest,
    submit,
)
from shared.contract import (
    CompactJob,
    EnrollJob,
    Job,
    RecognizeJob,
    ReindexJob,
    RenderSettings,
)
from shared.errors import (
    CollectionNotFound,
    FaceNotFound,
    SubjectNotFound,
)
from shared.gallery import CollectionInfo, people_subjects

bp = Blueprint("collections", __name__)

MAX_PAGE = 1000
DEFAULT_PAGE = 100


ENROLL_DOC = queued_operation(
    "Enroll the largest face of each image for a subject (creates the collection)",
    EnrollRequest,
    {
        201: Reply(
            "Enrolled and durable (an image enrolled before is returned, not added)", EnrollBody, msgpack=True
        ),
        400: Reply("Malformed request", ErrorDetail),
        403: Reply("collection_forbidden: the API key is limited to other collections", ErrorDetail),
        409: Reply(RECOGNIZER_CONFLICT, ErrorDetail),
        422: Reply(
            "Bad name, image, or no_face / several_faces / low_quality (naming the image)", ErrorDetail
        ),
    },
)


@bp.post("/collections/<collection>/subjects/<subject>/faces")
@documented(ENROLL_DOC)
def enroll(collection: str, subject: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_name("subject", subject)
    return submit(
        ctx,
        images_body(EnrollRequest),
        lambda body, owner: prepare_enroll(ctx, collection, subject, body.request, owner),
        status=201,
    )


def prepare_enroll(
    ctx: ApiContext, collection: str, subject: str, req: EnrollRequest, owner: str
) -> Submission:
    """The enroll job of a request whose collection and subject names were checked (also the
    drop-in protocols': api/compat/)."""
    check_workers(ctx, collection, ctx.gallery.recognizer_of(collection))
    images, settings = images_of(ctx, req, ctx.settings.max_images)
    all_or_none(settings)
    job = EnrollJob(
        images,
        collection,
        subject,
        req.face,
        req.options(ctx.settings.max_faces),
        g.request_id,
        settings.data_count,
        req.min_quality,
    )
    return Submission(job, RenderSettings("2", False, settings.data_count, owner=owner))


RECOGNIZE_DOC = queued_operation(
    "Recognize every face of each image among a collection's subjects (1:N, open set)",
    RecognizeRequest,
    {
        200: Reply(
            "Per image, per face: the subject (null under the threshold) and top matches",
            RecognizeBody,
            msgpack=True,
        ),
        400: Reply("Malformed request", ErrorDetail),
        403: Reply("collection_forbidden", ErrorDetail),
        404: Reply("collection_not_found", ErrorDetail),
        409: Reply(RECOGNIZER_CONFLICT, ErrorDetail),
        422: Reply("Invalid field or name", ErrorDetail),
    },
)


@bp.post("/collections/<collection>/recognize")
@documented(RECOGNIZE_DOC)
def recognize(collection: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    return submit(
        ctx,
        images_body(RecognizeRequest),
        lambda body, owner: prepare_recognize(ctx, collection, body.request, owner),
    )


def prepare_recognize(ctx: ApiContext, collection: str, req: RecognizeRequest, owner: str) -> Submission:
    """The recognize job of a request whose collection name was checked (also api/compat/'s)."""
    check_workers(ctx, collection, existing(ctx, collection))
    images, settings = images_of(ctx, req, ctx.settings.max_images)
    job = RecognizeJob(
        images, collection, req.limit, req.threshold, req.options(ctx.settings.max_faces), g.request_id
    )
    render = RenderSettings("2", False, settings.data_count, settings.api_errors, owner)
    return Submission(job, render)


COLLECTION_JOB_BODY = (
    'An optional JSON body {"callback_url": URL} asks for a signed webhook when the job ends '
    "(docs/webhooks.md)."
)
REINDEX_DOC = Operation(
    summary="Re-embed a collection's stored crops with the workers' recognizer (async)",
    description=COLLECTION_JOB_BODY,
    replies={
        202: Reply("Queued; poll status_url", JobAccepted),
        415: Reply(UNSUPPORTED_MEDIA_TYPE, ErrorDetail),
        422: Reply("Bad name", ErrorDetail),
        403: Reply("collection_forbidden", ErrorDetail),
        404: Reply("collection_not_found", ErrorDetail),
        503: Reply("Overloaded or Redis unavailable", ErrorDetail, retry_after=True),
    },
)


@bp.post("/collections/<collection>/reindex")
@documented(REINDEX_DOC)
def reindex(collection: str) -> Response:
    return _collection_job(collection, ReindexJob)


COMPACT_DOC = Operation(
    summary="Erase deleted faces from the gallery's files: rewrite the collection's storage (async)",
    description=(
        "A delete removes a face from every search at once. In PostgreSQL its row, crop and vector "
        "stay in the database's files (dead tuples, the index, the WAL) until vacuum reuses the "
        "space; a compaction rewrites the collection's table and its indexes (VACUUM FULL: the "
        "collection's searches and writes wait meanwhile), then people discovery's tables, "
        "which every collection shares (every collection's ingest waits meanwhile; a deleted "
        "collection's discovered photos go too), and flushes the WAL. "
        "SQLite zeroes deleted faces at once; there it only gives the free space back. " + COLLECTION_JOB_BODY
    ),
    replies=REINDEX_DOC.replies,
)


@bp.post("/collections/<collection>/compact")
@documented(COMPACT_DOC)
def compact(collection: str) -> Response:
    return _collection_job(collection, CompactJob)


def _collection_job(collection: str, job: Callable[[str, str], Job]) -> Response:
    """Queue a job on a whole collection (reindex, compact): no body, always async."""
    ctx = context()
    collection_access(ctx, collection)

    def prepare(_: None, owner: str) -> Submission:
        existing(ctx, collection)
        return Submission(job(collection, g.request_id), RenderSettings("2", False, 0, owner=owner))

    return submit(ctx, read_collection_job, prepare)


def read_collection_job() -> Read[None]:
    """A whole-collection job's request (reindex, compact, recluster): always async, and an
    optional JSON body {"callback_url": ...} (api/schemas/images.py QueuedBody's field)."""
    data = request.get_data(cache=True)
    callback = CollectionJobRequest.model_validate_json(data).callback_url if data.strip() else None
    return Read(None, Flags(run_async=True, msgpack=False, callback=callback), raw_digest())


def _collection_body(info: CollectionInfo) -> CollectionBody:
    r = info.recognizer
    return {
        "collection": info.name,
        "recognizer": {
            "key": r.key,
            "name": r.name,
            "version": r.version,
            "license": r.license,
            "dimension": r.dimension,
        },
        "created": info.created,
        "subjects": info.subjects,
        "faces": info.faces,
    }


@bp.get("/collections")
@documented(
    Operation(
        summary="The collections this API key may use", replies={200: Reply("Collections", CollectionsBody)}
    )
)
def list_collections() -> Response:
    ctx = context()
    key = request_key()
    body: CollectionsBody = {
        "collections": [
            _collection_body(info)
            for info in ctx.gallery.collections()
            if ctx.api_keys.may_use(key, info.name)
        ]
    }
    return encode(body, wants_msgpack(request))


SUBJECTS_DOC = Operation(
    summary="A collection's subjects, by name, paged",
    query=(
        Query("offset", "Subjects to skip", {"type": "integer", "minimum": 0}),
        Query(
            "limit",
            f"Page size (default {DEFAULT_PAGE})",
            {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
        ),
    ),
    replies={
        200: Reply("Subjects with their face counts", SubjectsBody),
        403: Reply("collection_forbidden", ErrorDetail),
        404: Reply("collection_not_found", ErrorDetail),
        422: Reply("Bad offset, limit or name", ErrorDetail),
    },
)


@bp.get("/collections/<collection>/subjects")
@documented(SUBJECTS_DOC)
def list_subjects(collection: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    offset = int_arg("offset", 0, 2**31)
    limit = max(1, int_arg("limit", DEFAULT_PAGE, MAX_PAGE))
    existing(ctx, collection)
    subjects = ctx.gallery.subjects(collection, offset, limit)
    more = len(subjects) == limit
    body: SubjectsBody = {
        "subjects": [{"subject": s.subject, "faces": s.faces, "created": s.created} for s in subjects],
        "offset": offset,
        "limit": limit,
        "next": f"/collections/{collection}/subjects?offset={offset + limit}&limit={limit}" if more else None,
    }
    return encode(body, wants_msgpack(request))


SUBJECT_DOC = Operation(
    summary="A subject's faces, with ids and thumbnail URLs",
    replies={
        200: Reply("The subject's faces", SubjectFacesBody),
        403: Reply("collection_forbidden", ErrorDetail),
        404: Reply("collection_not_found or subject_not_found", ErrorDetail),
        422: Reply("Bad name", ErrorDetail),
    },
)


@bp.get("/collections/<collection>/subjects/<subject>")
@documented(SUBJECT_DOC)
def get_subject(collection: str, subject: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_name("subject", subject)
    existing(ctx, collection)
    faces = ctx.gallery.faces(collection, subject)
    if not faces:
        raise SubjectNotFound(f"no subject {subject!r} in collection {collection!r}")
    body: SubjectFacesBody = {
        "collection": collection,
        "subject": subject,
        "faces": [
            {
                "id": f.id,
                "subject": f.subject,
                "bbox": f.bbox,
                "prob": f.prob,
                "faces_in_image": f.faces_in_image,
                "thumbnail_url": thumbnail_url(collection, f.id),
            }
            for f in faces
        ],
    }
    return encode(body, wants_msgpack(request))


@bp.get("/collections/<collection>/faces/<face_id>/thumbnail")
@documented(
    Operation(
        summary="An enrolled face's aligned 112x112 crop",
        replies={
            200: Reply("JPEG", media_type="image/jpeg"),
            403: Reply("collection_forbidden", ErrorDetail),
            404: Reply("face_not_found", ErrorDetail),
            422: Reply("Bad name or face id", ErrorDetail),
        },
    )
)
def thumbnail(collection: str, face_id: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_face_id(face_id)
    crop = ctx.gallery.crop(collection, face_id) if ctx.gallery.recognizer_of(collection) else None
    return crop_response(crop, collection, face_id)


def crop_response(crop: bytes | None, collection: str, face_id: str) -> Response:
    """A face's stored crop as the JPEG it is (enrolled faces here, discovered ones in people)."""
    if crop is None:
        raise FaceNotFound(f"no face {face_id[:64]!r} in collection {collection!r}")
    return Response(crop, mimetype="image/jpeg")


DELETE_REPLIES = {
    200: Reply("What was deleted", DeletedBody),
    403: Reply("collection_forbidden", ErrorDetail),
    404: Reply("Not found", ErrorDetail),
    422: Reply("Bad name or face id", ErrorDetail),
}


@bp.delete("/collections/<collection>/subjects/<subject>")
@documented(Operation(summary="Delete a subject: its vectors, crops and rows", replies=DELETE_REPLIES))
def delete_subject(collection: str, subject: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_name("subject", subject)
    existing(ctx, collection)
    # Discovery's cluster of the subject follows (docs/people.md).
    deleted = people_subjects.delete_subject(ctx.gallery, ctx.people, collection, subject)
    if not deleted:
        raise SubjectNotFound(f"no subject {subject!r} in collection {collection!r}")
    body: DeletedBody = {"deleted": deleted}
    return encode(body, wants_msgpack(request))


@bp.patch("/collections/<collection>/subjects/<subject>")
@documented(
    Operation(
        summary="Rename a subject (its faces and vectors stay)",
        request=RenameRequest,
        replies={
            200: Reply("The new name and its faces", RenamedBody),
            400: Reply("The body is not valid JSON or MessagePack", ErrorDetail),
            403: Reply("collection_forbidden", ErrorDetail),
            404: Reply("collection_not_found or subject_not_found", ErrorDetail),
            409: Reply("subject_exists: the collection has a subject of that name", ErrorDetail),
            415: Reply(UNSUPPORTED_MEDIA_TYPE, ErrorDetail),
            422: Reply("Bad name", ErrorDetail),
        },
    )
)
def rename_subject(collection: str, subject: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_name("subject", subject)
    new_name = RenameRequest.model_validate(parse(request.get_data(), wire_of(request.mimetype))).subject
    check_name("subject", new_name)
    existing(ctx, collection)
    if new_name == subject:
        faces = len(ctx.gallery.faces(collection, subject))
    else:
        faces = people_subjects.rename_subject(ctx.gallery, ctx.people, collection, subject, new_name)
    if not faces:
        raise SubjectNotFound(f"no subject {subject!r} in collection {collection!r}")
    body: RenamedBody = {"subject": new_name, "faces": faces}
    return encode(body, wants_msgpack(request))


@bp.delete("/collections/<collection>/faces/<face_id>")
@documented(
    Operation(
        summary="Delete one enrolled face",
        replies=DELETE_REPLIES,
        description=(
            "A face people discovery enrolled (a named cluster's) is taken out of that subject "
            "there too: its discovered face leaves the cluster and is not brought back."
        ),
    )
)
def delete_face(collection: str, face_id: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_face_id(face_id)
    existing(ctx, collection)
    # A face discovery enrolled leaves its subject's cluster too (docs/people.md).
    if not people_subjects.delete_enrolled_face(ctx.gallery, ctx.people, collection, face_id):
        raise FaceNotFound(f"no face {face_id[:64]!r} in collection {collection!r}")
    body: DeletedBody = {"deleted": 1}
    return encode(body, wants_msgpack(request))


@bp.delete("/collections/<collection>")
@documented(
    Operation(
        summary="Delete a collection with all its subjects and faces, and its discovered people",
        replies=DELETE_REPLIES,
    )
)
def delete_collection(collection: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    enrolled = ctx.gallery.delete_collection(collection)
    discovered = ctx.people.delete_collection(collection)  # its photos' faces and crops too
    if not (enrolled or discovered):
        raise CollectionNotFound(f"no collection {collection!r}")
    body: DeletedBody = {"deleted": 1}
    return encode(body, wants_msgpack(request))
