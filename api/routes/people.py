"""People discovery (docs/people.md): ingest photos (a job: the worker embeds, stores and clusters
every face), list the clusters, and the person's decisions (read and written here, in the
store's lock: shared/gallery/people.py)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from flask import Blueprint, Response, g, request
from pydantic import BaseModel

from api.bodies import Body, parse, wire_of
from api.collection_access import all_or_none, check_face_id, check_workers, collection_access, images_of
from api.context import ApiContext, context
from api.openapi import Operation, Reply, documented
from api.render import encode, wants_msgpack
from api.routes.collections import COLLECTION_JOB_BODY, crop_response, read_collection_job
from api.schemas import ErrorDetail, JobAccepted
from api.schemas.people import (
    ApartRequest,
    ClusterFaceBody,
    ClustersBody,
    DecisionBody,
    IgnoreRequest,
    IngestBody,
    IngestRequest,
    MergeRequest,
    MoveFaceRequest,
    NameClusterRequest,
)
from api.submit import (
    UNSUPPORTED_MEDIA_TYPE,
    Submission,
    images_body,
    queued_operation,
    submit,
)
from shared.contract import IngestJob, ReclusterJob, RecognizerInfo, RenderSettings
from shared.errors import CollectionNotFound, InvalidField, ServiceUnavailable
from shared.gallery import check_recognizer
from shared.gallery.people import (
    ClusterFace,
    ignore_cluster,
    keep_apart,
    merge_clusters,
    move_face,
    name_cluster,
)
from shared.gallery.people_subjects import sync

bp = Blueprint("people", __name__)

ModelT = TypeVar("ModelT", bound=BaseModel)

INGEST_DOC = dataclasses.replace(
    queued_operation(
        "Ingest photos for people discovery: every face is stored (vector, crop, box, quality) and clustered",
        IngestRequest,
        {
            200: Reply(
                "Per photo, in request order: its faces with their cluster and subject",
                IngestBody,
                msgpack=True,
            ),
            400: Reply("Malformed request", ErrorDetail),
            403: Reply("collection_forbidden", ErrorDetail),
            409: Reply("recognizer_mismatch", ErrorDetail),
            422: Reply("Invalid field, name, photo id or image", ErrorDetail),
        },
    ),
    description=(
        "More photos than ingest_job_photos (8) are split into jobs of that many, which several "
        "workers run at once, under one job id: the answer, /results (with progress in photos), "
        "webhooks and the Idempotency-Key treat them as one job. If one of those jobs fails, the "
        "request fails with its error once all ended, and the other jobs' photos are stored "
        "(sending it again answers them as stored). A face's cluster is as its own job left it."
    ),
)


@bp.post("/collections/<collection>/photos")
@documented(INGEST_DOC)
def ingest(collection: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)

    def prepare(body: Body[IngestRequest], owner: str) -> Submission:
        req = body.request
        check_workers(ctx, collection, ctx.gallery.recognizer_of(collection))
        ids = list(req.photo_ids)
        if ids and len(ids) != req.images.count:
            raise InvalidField(f"photo_ids has {len(ids)} ids for {req.images.count} images: one per image")
        if len(set(ids)) != len(ids):
            raise InvalidField("photo_ids: an id appears twice")
        images, settings = images_of(ctx, req, ctx.settings.max_images)
        all_or_none(settings)
        job = IngestJob(
            images,
            collection,
            ids or [""] * len(images),
            req.options(ctx.settings.max_faces),
            g.request_id,
            settings.data_count,
        )
        return Submission(job, RenderSettings("2", False, settings.data_count, owner=owner))

    return submit(ctx, images_body(IngestRequest), prepare)


DECISION_REPLIES = {
    200: Reply("Done, kept: later clustering respects it", DecisionBody),
    400: Reply("The body is not valid JSON or MessagePack, or no such cluster", ErrorDetail),
    403: Reply("collection_forbidden", ErrorDetail),
    404: Reply("collection_not_found, face_not_found", ErrorDetail),
    415: Reply(UNSUPPORTED_MEDIA_TYPE, ErrorDetail),
    422: Reply("Invalid field, name, face id or cluster id", ErrorDetail),
}
# Decisions the gallery follows (name, merge, move): its recognizer is needed first.
SUBJECT_DECISION_REPLIES = {
    **DECISION_REPLIES,
    409: Reply("recognizer_mismatch: the online workers run another recognizer", ErrorDetail),
    503: Reply(
        "No worker online and no face enrolled: the recognizer is unknown", ErrorDetail, retry_after=True
    ),
}
# Cluster ids are positive 63-bit integers in both databases.
MAX_CLUSTER_ID = 2**53


def _cluster(cluster: int) -> int:
    if cluster > MAX_CLUSTER_ID:
        raise InvalidField(f"cluster id {cluster} is out of range")
    return cluster


def _face(collection: str, face: ClusterFace) -> ClusterFaceBody:
    return {
        "face_id": face.face_id,
        "photo_id": face.photo_id,
        "bbox": face.bbox,
        "quality": face.quality,
        "thumbnail_url": f"/collections/{collection}/photos/faces/{face.face_id}/thumbnail",
    }


@bp.get("/collections/<collection>/clusters")
@documented(
    Operation(
        summary="The people found: clusters of faces, largest first",
        replies={
            200: Reply("Clusters, each with its faces (best first) and cover", ClustersBody, msgpack=True),
            403: Reply("collection_forbidden", ErrorDetail),
            404: Reply("collection_not_found: no photo was ingested", ErrorDetail),
            422: Reply("Bad collection name", ErrorDetail),
        },
    )
)
def clusters(collection: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    listing = ctx.people.listing(collection)
    body: ClustersBody = {
        "collection": collection,
        "clusters": [
            {
                "id": cluster.id,
                "size": len(cluster.faces),
                "subject": cluster.subject,
                "ignored": cluster.ignored,
                "cover": _face(collection, cluster.faces[0]),
                "faces": [_face(collection, face) for face in cluster.faces],
            }
            for cluster in listing.clusters
        ],
        "unclustered": listing.unclustered,
        "pending": 0,
    }
    return encode(body, wants_msgpack(request))


@bp.get("/collections/<collection>/photos/faces/<face_id>/thumbnail")
@documented(
    Operation(
        summary="A discovered face's aligned crop (JPEG)",
        replies={
            200: Reply("The crop", media_type="image/jpeg"),
            403: Reply("collection_forbidden", ErrorDetail),
            404: Reply("face_not_found", ErrorDetail),
            422: Reply("Bad collection name or face id", ErrorDetail),
        },
    )
)
def thumbnail(collection: str, face_id: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_face_id(face_id)
    return crop_response(ctx.people.crop(collection, face_id), collection, face_id)


def _recognizer(ctx: ApiContext, collection: str) -> RecognizerInfo:
    """The recognizer of the collection's vectors: the gallery's, or (none enrolled yet) the one
    every online worker runs, which made the discovered faces' vectors."""
    stored = ctx.gallery.recognizer_of(collection)
    workers = ctx.workers.online()
    if stored is None and not workers:
        raise ServiceUnavailable("no worker online: the recognizer of the collection's faces is unknown")
    running = stored or workers[0].recognizer
    for worker in workers:
        check_recognizer(collection, running, worker.recognizer)
    return running


def _to_gallery(ctx: ApiContext, collection: str, recognizer: RecognizerInfo, faces: list[str]) -> None:
    """The gallery (who a subject is) follows the decision for the faces it touched."""
    sync(ctx.gallery, ctx.people, collection, recognizer, faces)


def _body(model: type[ModelT]) -> ModelT:
    raw: Any = parse(request.get_data(), wire_of(request.mimetype))
    return model.model_validate(raw)


def _decided(collection: str, cluster: int | None) -> Response:
    body: DecisionBody = {"collection": collection, "cluster": cluster}
    return encode(body, wants_msgpack(request))


@bp.post("/collections/<collection>/clusters/<int:cluster>/name")
@documented(
    Operation(
        summary="Name a cluster: its faces become the subject's",
        request=NameClusterRequest,
        replies=SUBJECT_DECISION_REPLIES,
    )
)
def name(collection: str, cluster: int) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    subject = _body(NameClusterRequest).subject
    recognizer = _recognizer(ctx, collection)  # first: a refusal leaves nothing decided
    named = name_cluster(ctx.people, collection, _cluster(cluster), subject)
    _to_gallery(ctx, collection, recognizer, ctx.people.face_ids(collection, cluster=named))
    return _decided(collection, named)


@bp.post("/collections/<collection>/clusters/<int:cluster>/merge")
@documented(
    Operation(summary="Merge clusters into this one", request=MergeRequest, replies=SUBJECT_DECISION_REPLIES)
)
def merge(collection: str, cluster: int) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    others = _body(MergeRequest).clusters
    recognizer = _recognizer(ctx, collection)
    touched = [face for c in [cluster, *others] for face in ctx.people.face_ids(collection, cluster=c)]
    merge_clusters(ctx.people, collection, _cluster(cluster), others)
    _to_gallery(ctx, collection, recognizer, touched)
    return _decided(collection, cluster)


@bp.post("/collections/<collection>/clusters/<int:cluster>/ignore")
@documented(
    Operation(
        summary="Mark a cluster as not a person (or not, with ignored: false)",
        request=IgnoreRequest,
        replies=DECISION_REPLIES,
    )
)
def ignore(collection: str, cluster: int) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    ignore_cluster(ctx.people, collection, _cluster(cluster), _body(IgnoreRequest).ignored)
    return _decided(collection, cluster)


@bp.post("/collections/<collection>/clusters/<int:cluster>/apart")
@documented(
    Operation(
        summary="Keep two clusters apart: a re-cluster never merges them",
        request=ApartRequest,
        replies=DECISION_REPLIES,
    )
)
def apart(collection: str, cluster: int) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    keep_apart(ctx.people, collection, _cluster(cluster), _body(ApartRequest).cluster)
    return _decided(collection, cluster)


RECLUSTER_DOC = Operation(
    summary="Cluster a collection's discovered faces again, keeping every decision (async)",
    description=COLLECTION_JOB_BODY,
    replies={
        202: Reply("Queued; poll status_url", JobAccepted),
        403: Reply("collection_forbidden", ErrorDetail),
        415: Reply(UNSUPPORTED_MEDIA_TYPE, ErrorDetail),
        422: Reply("Bad name", ErrorDetail),
        503: Reply("Overloaded or Redis unavailable", ErrorDetail, retry_after=True),
    },
)


@bp.post("/collections/<collection>/clusters/recluster")
@documented(RECLUSTER_DOC)
def recluster(collection: str) -> Response:
    """Always a job: the worker holds the clustering; the 202's status_url tells when it is done."""
    ctx = context()
    collection_access(ctx, collection)

    def prepare(_: None, owner: str) -> Submission:
        if ctx.people.version(collection) < 0:
            raise CollectionNotFound(f"no photos were ingested into collection {collection!r}")
        return Submission(ReclusterJob(collection, g.request_id), RenderSettings("2", False, 0, owner=owner))

    return submit(ctx, read_collection_job, prepare)


@bp.post("/collections/<collection>/photos/faces/<face_id>/move")
@documented(
    Operation(
        summary="Move a face to a cluster or subject, or out of any (it is never pulled back)",
        request=MoveFaceRequest,
        replies=SUBJECT_DECISION_REPLIES,
    )
)
def move(collection: str, face_id: str) -> Response:
    ctx = context()
    collection_access(ctx, collection)
    check_face_id(face_id)
    req = _body(MoveFaceRequest)
    recognizer = _recognizer(ctx, collection)
    target = move_face(ctx.people, collection, face_id, req.cluster, req.subject)
    # The photo's other faces too: one may have left the target (one face per photo there).
    _to_gallery(ctx, collection, recognizer, ctx.people.face_ids(collection, photo_of=face_id))
    return _decided(collection, None if target < 0 else target)
