"""POST /verify: 1:1, the largest face of two images, or of one image against an enrolled subject."""

from __future__ import annotations

from flask import Blueprint, Response, g

from api.collection_access import (
    RECOGNIZER_CONFLICT,
    all_or_none,
    check_workers,
    collection_access,
    existing,
    images_of,
)
from api.context import ApiContext, context
from api.openapi import Reply, documented
from api.schemas import ErrorDetail, VerifyBody, VerifyRequest
from api.submit import Submission, images_body, queued_operation, submit
from shared.contract import RenderSettings, VerifyJob
from shared.errors import InvalidRequest

bp = Blueprint("verify", __name__)

VERIFY_DOC = queued_operation(
    "Are these the same person? Two images, or one image and a collection's subject",
    VerifyRequest,
    {
        200: Reply("same: similarity >= threshold", VerifyBody, msgpack=True),
        400: Reply("Not two images, nor one image with collection and subject", ErrorDetail),
        403: Reply("collection_forbidden", ErrorDetail),
        404: Reply("collection_not_found or subject_not_found", ErrorDetail),
        409: Reply(RECOGNIZER_CONFLICT, ErrorDetail),
        422: Reply("Bad image, no_face (naming the image), bad name", ErrorDetail),
    },
)


@bp.post("/verify")
@documented(VERIFY_DOC)
def verify() -> Response:
    ctx = context()
    return submit(
        ctx, images_body(VerifyRequest), lambda body, owner: prepare_verify(ctx, body.request, owner)
    )


def prepare_verify(ctx: ApiContext, req: VerifyRequest, owner: str) -> Submission:
    """The verify job of a request (also the drop-in protocols': api/compat/)."""
    against_subject = req.collection is not None or req.subject is not None
    if against_subject:
        if req.collection is None or req.subject is None or req.images.count != 1:
            raise InvalidRequest('verify against a subject takes one image, "collection" and "subject"')
        collection_access(ctx, req.collection)
        check_workers(ctx, req.collection, existing(ctx, req.collection))
    elif req.images.count != 2:
        raise InvalidRequest(
            f'verify takes two images ({req.images.count} sent), or one with "collection" and "subject"'
        )
    images, settings = images_of(ctx, req, 2)
    all_or_none(settings)
    job = VerifyJob(
        images,
        req.collection,
        req.subject,
        req.threshold,
        req.options(ctx.settings.max_faces),
        g.request_id,
        settings.data_count,
    )
    return Submission(job, RenderSettings("2", False, settings.data_count, owner=owner))
