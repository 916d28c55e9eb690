"""What the protocol modules share: the collection a request works on, a protocol's images as
the core's request models, and queueing one job to answer from its result."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Response

from api.auth import request_key
from api.collection_access import all_or_none, collection_access
from api.context import ApiContext
from api.schemas import ImagesBody
from api.submit import Flags, Read, Submission, submit
from shared.contract import EnrollResult, ExtractResult, JobResult, RecognizeResult, VerifyResult
from shared.errors import InvalidRequest, JobFailed, from_info

SUBJECT_PAGE = 1000  # subjects read per gallery call
ModelT = TypeVar("ModelT", bound=ImagesBody)
ResultT = TypeVar("ResultT", ExtractResult, EnrollResult, RecognizeResult, VerifyResult)


def home_collection(ctx: ApiContext) -> str:
    """The collection a protocol without collection names uses: the API key's first collection,
    else FACEREST_COMPAT_COLLECTION; checked as /collections checks a name and a key's access."""
    collection = ctx.api_keys.home_collection(request_key(), ctx.settings.compat_collection)
    collection_access(ctx, collection)
    return collection


def subject_names(ctx: ApiContext, collection: str) -> list[str]:
    """Every subject of the collection by name ([] for a collection not made yet): the
    protocols list subjects in one answer, the gallery pages them."""
    names: list[str] = []
    if ctx.gallery.recognizer_of(collection) is None:
        return names
    while True:
        page = ctx.gallery.subjects(collection, len(names), SUBJECT_PAGE)
        names += [s.subject for s in page]
        if len(page) < SUBJECT_PAGE:
            return names


def images_request(model: type[ModelT], images: Sequence[bytes | str], **fields: Any) -> ModelT:
    """A protocol's images and options as the core's request model (pydantic validates them as
    it validates /extract's and /collections' bodies); an image is its bytes or base64 text."""
    if not images:
        raise InvalidRequest("no image in the request")
    return model.model_validate({"images": {"data": list(images)}, **fields})


def run_job(
    ctx: ApiContext,
    request: ModelT,
    prepare: Callable[[ModelT, str], Submission],
    kind: type[ResultT],
    answer: Callable[[ResultT], Response],
) -> Response:
    """Queue the job ``prepare`` makes of ``request`` (through api/submit.py: the queue's and the
    owner's limits, an Idempotency-Key), wait for its result (a ``kind``) and answer with
    ``answer``."""
    digest = hashlib.sha256()
    for image in request.images.data:
        digest.update(image if isinstance(image, bytes) else image.encode())
    digest.update(request.model_dump_json(exclude={"images"}).encode())

    def read() -> Read[ModelT]:
        return Read(request, Flags(run_async=False, msgpack=False), digest.hexdigest())

    def prepare_all(req: ModelT, owner: str) -> Submission:
        # The protocols' answers have no place for one image's error: a refused image fails the
        # request, as enroll and verify do everywhere.
        submission = prepare(req, owner)
        all_or_none(submission.render)
        return submission

    def finish(_: ModelT, result: JobResult) -> Response:
        if not isinstance(result, kind):  # an Idempotency-Key's job of another route
            raise JobFailed(f"the job gave a {result.__class__.__name__}, not a {kind.__name__}")
        if isinstance(result, ExtractResult | RecognizeResult):
            for image in result.images:  # one the worker could not read
                if image.error is not None:
                    raise from_info(image.error)
        return answer(result)

    return submit(ctx, read, prepare_all, answer=finish)
