"""POST /verify: 1:1, the largest face of two images, or of one image against an enrolled subject."""

from __future__ import annotations

from flask import Blueprint, Response, g

from api.context import context
from api.openapi import Operation, Reply, documented
from api.routes.collections import (
    all_or_none,
    check_recognizer,
    collection_access,
    existing,
    flags_of,
    images_of,
)
from api.schemas import ErrorDetail, JobAccepted, VerifyBody, VerifyRequest
from api.submit import IDEMPOTENCY_DOC, UNSUPPORTED_MEDIA_TYPE, Flags, Submission, json_body, submit
from shared.contract import RenderSettings, VerifyJob
from shared.errors import InvalidRequest

bp = Blueprint("verify", __name__)

VERIFY_DOC = Operation(
    summary="Are these the same person? Two images, or one image and a collection's subject",
    request=VerifyRequest,
    headers=(IDEMPOTENCY_DOC,),
    replies={
        200: Reply("same: similarity >= threshold", VerifyBody, msgpack=True),
        202: Reply('Queued ("async": true); poll status_url', JobAccepted, msgpack=True),
        400: Reply("Not two images, nor one image with collection and subject", ErrorDetail),
        403: Reply("collection_forbidden", ErrorDetail),
        404: Reply("collection_not_found or subject_not_found", ErrorDetail),
        409: Reply("recognizer_mismatch, or idempotency_conflict", ErrorDetail),
        413: Reply("A size limit was exceeded", ErrorDetail),
        415: Reply(UNSUPPORTED_MEDIA_TYPE, ErrorDetail),
        422: Reply("Bad image, no_face (naming the image), bad name", ErrorDetail),
        503: Reply("Overloaded or Redis unavailable", ErrorDetail, retry_after=True),
        504: Reply("No result within the synchronous timeout", ErrorDetail, retry_after=True),
    },
)


@bp.post("/verify")
@documented(VERIFY_DOC)
def verify() -> Response:
    ctx = context()

    def prepare(body: bytes, owner: str) -> Submission:
        req = VerifyRequest.model_validate(json_body(body))
        against_subject = req.collection is not None or req.subject is not None
        if against_subject:
            if req.collection is None or req.subject is None or req.images.count != 1:
                raise InvalidRequest('verify against a subject takes one image, "collection" and "subject"')
            collection_access(ctx, req.collection)
            check_recognizer(ctx, req.collection, existing(ctx, req.collection))
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
        render = RenderSettings("2", False, settings.data_count, owner=owner)
        return Submission(job, render, Flags(req.run_async, req.msgpack))

    return submit(ctx, prepare, flags_of(VerifyRequest))
