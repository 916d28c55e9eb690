"""What the routes that use a collection share (api/routes/collections.py, api/routes/verify.py):
names, the API key's access, the collection's recognizer against the online workers', and the
images of a recognition request."""

from __future__ import annotations

from api.auth import request_key
from api.bodies import read_images
from api.context import ApiContext
from api.schemas import RecognitionRequest
from shared.contract import RecognizerInfo, RenderSettings
from shared.errors import (
    CollectionForbidden,
    CollectionNotFound,
    InvalidField,
    InvalidRequest,
    LimitExceeded,
    from_info,
)
from shared.gallery import check_recognizer
from shared.recognition import FACE_ID_RULE, NAME_RULE, valid_face_id, valid_name

RECOGNIZER_CONFLICT = (
    "recognizer_mismatch: no online worker runs the collection's recognizer; or idempotency_conflict"
)


def check_name(kind: str, name: str) -> None:
    if not valid_name(name):
        raise InvalidField(f"{kind} name {name[:140]!r} is not valid: {NAME_RULE}")


def check_face_id(face_id: str) -> None:
    """The same refusal as a bad name's (422): a face id can never be a dot segment or a NUL."""
    if not valid_face_id(face_id):
        raise InvalidField(f"face id {face_id[:140]!r} is not valid: {FACE_ID_RULE}")


def collection_access(ctx: ApiContext, collection: str) -> None:
    """A valid name the request's API key may use (a key may be limited to some collections)."""
    check_name("collection", collection)
    if not ctx.api_keys.may_use(request_key(), collection):
        raise CollectionForbidden(f"this API key may not use collection {collection!r}")


def existing(ctx: ApiContext, collection: str) -> RecognizerInfo:
    """The collection's recognizer; CollectionNotFound if there is no such collection."""
    recognizer = ctx.gallery.recognizer_of(collection)
    if recognizer is None:
        raise CollectionNotFound(f"no collection {collection!r}")
    return recognizer


def check_workers(ctx: ApiContext, collection: str, recognizer: RecognizerInfo | None) -> None:
    """Refuse a job on a collection whose vectors an online worker's recognizer cannot compare
    with (any worker may take the job, so every online worker must run that recognizer)."""
    if recognizer is None:
        return
    for worker in ctx.workers.online():
        check_recognizer(collection, recognizer, worker.recognizer)


def images_of(ctx: ApiContext, req: RecognitionRequest, at_most: int) -> tuple[list[bytes], RenderSettings]:
    count = req.images.count
    if count == 0:
        raise InvalidRequest("images.data is empty: send at least one base64 image (or images.urls)")
    if count > at_most:
        raise LimitExceeded(f"{count} images sent, more than {at_most}")
    read = read_images(ctx, req)
    settings = RenderSettings(
        api_ver="2", landmarks=False, data_count=len(req.images.data), api_errors=read.errors
    )
    return read.accepted, settings


def all_or_none(settings: RenderSettings) -> None:
    """Enroll and verify use every image: the first refused one fails the request."""
    if settings.api_errors:
        raise from_info(settings.api_errors[min(settings.api_errors)])
