"""Answers for finished jobs: merge the API's per-image errors with the worker's results, apply
the api_ver 1 rule, and render the requested API version in JSON or MessagePack."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from difflib import get_close_matches
from typing import Any, TypeVar, cast

import msgpack
import numpy as np
import orjson
from flask import Request, Response

from api.schemas import (
    ErrorBody,
    ErrorDetail,
    ExtractV1,
    ExtractV2,
    FaceV1,
    FaceV2,
    ImagesBody,
    ImageV2,
    JobStateBody,
    ModelV2,
    QualityBody,
    RecognitionBody,
    RecognizeBody,
    RecognizedFaceBody,
    RecognizedImageBody,
    TookV2,
)
from api.schemas.people import IngestBody, IngestedPhotoBody, ReclusterBody
from api.schemas.videos import TrackBody, VideoResultBody, VideoSegmentBody
from shared.contract import (
    CompactResult,
    EnrollResult,
    ErrorInfo,
    ExtractResult,
    Face,
    FaceQuality,
    ImageResult,
    IngestResult,
    JobResult,
    ModelRef,
    ReclusterResult,
    RecognizedFace,
    RecognizedImage,
    RecognizeResult,
    ReindexResult,
    RenderSettings,
    Track,
    VerifyResult,
    VideoResult,
    VideoSegmentResult,
    worker_id,
)
from shared.errors import FaceRestError, from_info
from shared.images import image_label
from shared.jobs import JobState, JobStatus

MSGPACK = "application/x-msgpack"
ItemT = TypeVar("ItemT")


def wants_msgpack(request: Request, flag: bool = False) -> bool:
    return flag or request.accept_mimetypes.best_match(["application/json", MSGPACK]) == MSGPACK


MASKS_UNSUPPORTED = (
    "detect_masks: not supported, no mask detection model ships under a usable license; "
    "mask_probs is null (docs/compatibility.md)"
)


def request_warnings(body: ImagesBody, unknown: Sequence[str] = ()) -> tuple[str, ...]:
    """What the request asked for that the service does not serve, or sent and was ignored (a
    misspelt option), to be said in the answer."""
    warnings = [MASKS_UNSUPPORTED] if body.detect_masks else []
    if unknown:
        known = list(type(body).model_fields)
        named = [
            f"{name} (did you mean {close[0]}?)" if (close := get_close_matches(name, known, 1)) else name
            for name in unknown
        ]
        warnings.append(f"unknown fields ignored: {', '.join(named)}")
    return tuple(warnings)


def in_request_order(
    render: RenderSettings, worked: Sequence[ItemT], failed: Callable[[ErrorInfo], ItemT]
) -> list[ItemT]:
    """All images in request order: the API's refusals where it refused, the worker's results
    elsewhere (the worker saw only the images the API accepted, in order)."""
    results = iter(worked)
    total = len(worked) + len(render.api_errors)
    return [
        failed(render.api_errors[index]) if index in render.api_errors else next(results)
        for index in range(total)
    ]


def merged_images(render: RenderSettings, worked: Sequence[ImageResult] = ()) -> list[ImageResult]:
    """An extract job's images in request order (``in_request_order``)."""
    return in_request_order(render, worked, ImageResult.failed)


def request_failure(render: RenderSettings, worked: Sequence[ImageResult] = ()) -> FaceRestError | None:
    """The api_ver 1 rule, the original's: one bad image fails the whole request.

    The first failed image in request order becomes the request's error, as its own class (a
    refused URL stays url_refused); the API's messages already name their image, the worker's
    get the image's slot here. api_ver 2 reports errors per image instead.
    """
    if render.api_ver != "1":
        return None
    if not worked:  # before the job ran: only the API's own refusals are known, each named
        first = min(render.api_errors, default=None)
        return None if first is None else from_info(render.api_errors[first])
    for index, image in enumerate(merged_images(render, worked)):
        if image.error is not None:
            error = from_info(image.error)
            if index not in render.api_errors:
                error.message = f"{image_label(index, render.data_count)}: {error.message}"
            return error
    return None


def _vector(face: Face) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    return None if face.vec is None else np.frombuffer(face.vec, dtype=np.float32)


def _attributes(face: Face | RecognizedFace, out: FaceV1 | FaceV2 | RecognizedFaceBody) -> None:
    """Gender, age and dense landmarks, where the request asked for them."""
    if face.gender is not None and face.gender_score is not None:
        out["gender"] = face.gender
        out["gender_score"] = face.gender_score
    if face.age is not None:
        out["age"] = face.age
    if face.landmarks106 is not None:
        out["landmarks106"] = face.landmarks106
    if face.quality is not None:
        out["quality"] = quality_body(face.quality)


def quality_body(quality: FaceQuality) -> QualityBody:
    return {
        "quality": quality.quality,
        "sharpness": quality.sharpness,
        "yaw": quality.yaw,
        "pitch": quality.pitch,
        "roll": quality.roll,
        "size": quality.size,
    }


def _extracted_attributes(face: Face, out: FaceV1 | FaceV2) -> None:
    """The attributes, and the aligned crop where the request asked for it."""
    _attributes(face, out)
    if face.facedata is not None:
        out["facedata"] = base64.b64encode(face.facedata).decode()


def _face_v1(face: Face, index: int, landmarks: bool) -> FaceV1:
    out: FaceV1 = {
        "vec": _vector(face),
        "det": index,
        "prob": face.prob,
        "bbox": [round(v) for v in face.bbox],
    }
    if landmarks:
        out["landmarks"] = [[round(x), round(y)] for x, y in face.landmarks]
    _extracted_attributes(face, out)
    return out


def render_v1(images: list[ImageResult], landmarks: bool) -> ExtractV1:
    """The original InsightFace-REST format: one list of faces per image, in request order.

    Call only after ``request_failure`` found no failed image."""
    return [[_face_v1(face, i, landmarks) for i, face in enumerate(image.faces)] for image in images]


def _face_v2(face: Face, index: int, landmarks: bool) -> FaceV2:
    x1, y1, x2, y2 = face.bbox
    out: FaceV2 = {
        "num_det": index,
        "prob": face.prob,
        "bbox": [round(v) for v in face.bbox],
        "size": round(x2 - x1),
        "landmarks": [[round(x), round(y)] for x, y in face.landmarks] if landmarks else None,
        "vec": _vector(face),
        "norm": face.norm if face.vec is not None else None,
        "facedata": None,
        "mask_probs": None,
        "bbox_float": face.bbox,
        "size_wh": [round(x2 - x1, 2), round(y2 - y1, 2)],
    }
    if landmarks:
        out["landmarks_float"] = face.landmarks
    _extracted_attributes(face, out)
    return out


def _error_body(error: ErrorInfo) -> ErrorBody:
    return {"code": error.code, "message": error.message}


def error_detail(error: ErrorInfo) -> ErrorDetail:
    """A stored error as clients see it, with the extra fields its code has."""
    detail: ErrorDetail = {"code": error.code, "message": error.message}
    if error.available:
        detail["available"] = list(error.available)
    return detail


def _image_v2(image: ImageResult, landmarks: bool) -> ImageV2:
    out: ImageV2 = {
        "status": image.status,
        "took_ms": image.took_ms,
        "faces": [_face_v2(face, index, landmarks) for index, face in enumerate(image.faces)],
    }
    if image.error is not None:
        out["error"] = _error_body(image.error)
        return out
    if image.size is not None:
        out["size"] = image.size
    if image.timings is not None:
        out["timings"] = image.timings
    return out


def _model(ref: ModelRef) -> ModelV2:
    return {"key": ref.key, "name": ref.name, "version": ref.version, "license": ref.license}


def took(total_ms: float, worker_ms: float | None = None) -> TookV2:
    """The envelope's ``took``: ``total_ms`` is what InsightFace-REST's client requires."""
    out: TookV2 = {"total_ms": round(total_ms, 3)}
    if worker_ms is not None:
        out["worker_ms"] = worker_ms
    return out


def render_v2(
    result: ExtractResult, images: list[ImageResult], render: RenderSettings, total_ms: float
) -> ExtractV2:
    """The envelope ``{"took", "data": [per image], ...}``: the shape of InsightFace-REST's
    current responses; endpoints with other items reuse ``took`` and this layout."""
    out: ExtractV2 = {
        "took": took(total_ms, result.took_ms),
        "data": [_image_v2(image, render.landmarks) for image in images],
        "worker": worker_id(result.worker),
        # Vectors of different recognizers are never comparable: say which one made these.
        "recognizer": _model(result.recognizer),
        "detector": _model(result.detector),
    }
    if render.warnings:
        out["warnings"] = list(render.warnings)
    return out


def render_extract(render: RenderSettings, result: ExtractResult, total_ms: float) -> ExtractV1 | ExtractV2:
    """The body a finished job answers with; raises the request's error under the api_ver 1 rule."""
    failure = request_failure(render, result.images)
    if failure is not None:
        raise failure
    images = merged_images(render, result.images)
    if render.api_ver == "2":
        return render_v2(result, images, render, total_ms)
    return render_v1(images, render.landmarks)


def thumbnail_url(collection: str, face_id: str) -> str:
    return f"/collections/{collection}/faces/{face_id}/thumbnail"


def _recognized_image(image: RecognizedImage) -> RecognizedImageBody:
    out: RecognizedImageBody = {"status": image.status, "took_ms": image.took_ms}
    if image.error is not None:
        out["error"] = _error_body(image.error)
        return out
    out["faces"] = [_recognized_face(face) for face in image.faces]
    return out


def _recognized_face(face: RecognizedFace) -> RecognizedFaceBody:
    out: RecognizedFaceBody = {
        "bbox": face.bbox,
        "prob": face.prob,
        "subject": face.subject,
        "similarity": face.similarity,
        "matches": [{"subject": m.subject, "similarity": m.similarity} for m in face.matches],
        "norm": face.norm,
    }
    if face.landmarks is not None:
        out["landmarks"] = face.landmarks
    _attributes(face, out)
    return out


def render_recognize(render: RenderSettings, result: RecognizeResult, total_ms: float) -> RecognizeBody:
    """The envelope of /extract's api_ver 2 (``took``, ``data`` per image in request order, the
    recognizer) with each face's subject and matches."""
    images = in_request_order(render, result.images, lambda error: RecognizedImage("error", 0.0, error=error))
    return {
        "took": took(total_ms, result.took_ms),
        "collection": result.collection,
        "threshold": result.threshold,
        "recognizer": _model(result.recognizer),
        "data": [_recognized_image(image) for image in images],
    }


def render_result(
    render: RenderSettings, result: JobResult, total_ms: float
) -> (
    ExtractV1 | ExtractV2 | RecognitionBody | IngestBody | ReclusterBody | VideoResultBody | VideoSegmentBody
):
    """The body of a finished job of any kind (a synchronous answer, or /results' "result")."""
    match result:
        case ExtractResult():
            return render_extract(render, result, total_ms)
        case RecognizeResult():
            return render_recognize(render, result, total_ms)
        case EnrollResult():
            return {
                "collection": result.collection,
                "faces": [
                    {
                        "id": face.id,
                        "subject": face.subject,
                        "bbox": face.bbox,
                        "prob": face.prob,
                        "faces_in_image": face.faces_in_image,
                        "new": face.new,
                        "thumbnail_url": thumbnail_url(result.collection, face.id),
                    }
                    for face in result.faces
                ],
                "took": took(total_ms, result.took_ms),
                "recognizer": _model(result.recognizer),
            }
        case VerifyResult():
            return {
                "same": result.same,
                "similarity": result.similarity,
                "threshold": result.threshold,
                "faces": result.faces,
                "took": took(total_ms, result.took_ms),
                "recognizer": _model(result.recognizer),
            }
        case ReindexResult():
            return {
                "collection": result.collection,
                "faces": result.faces,
                "dropped": result.dropped,
                "took": took(total_ms, result.took_ms),
                "recognizer": _model(result.recognizer),
            }
        case CompactResult():
            return {
                "collection": result.collection,
                "faces": result.faces,
                "log_flushed": result.log_flushed,
                "redis_rewritten": result.redis_rewritten,
                "took": took(total_ms, result.took_ms),
            }
        case IngestResult():
            return render_ingest(result, total_ms)
        case ReclusterResult():
            return {
                "collection": result.collection,
                "clusters": result.clusters,
                "faces": result.faces,
                "took": took(total_ms, result.took_ms),
            }
        case VideoResult():
            return {
                "video_id": result.video_id,
                "duration_s": result.duration_s,
                "segments": result.segments,
                "frames": result.frames,
                "tracks": render_tracks(result.video_id, result.tracks, result.embedding),
                "collection": result.collection,
            }
        case VideoSegmentResult():
            return {
                "video_id": result.video_id,
                "index": result.index,
                "frames": result.frames,
                "tracks": render_tracks(result.video_id, result.tracks, False),
            }


def track_thumbnail_url(video_id: str, track: int) -> str:
    return f"/videos/{video_id}/tracks/{track}/thumbnail"


def render_tracks(video_id: str, tracks: Sequence[Track], embedding: bool) -> list[TrackBody]:
    """A video's tracks as GET /videos answers them, numbered in their order (by start)."""
    bodies: list[TrackBody] = []
    for number, track in enumerate(tracks):
        best = track.best
        body: TrackBody = {
            "track": number,
            "start_s": track.start_s,
            "end_s": track.end_s,
            "frames": track.frames,
            "best": {
                "time_s": best.time_s,
                "bbox": best.bbox,
                "prob": best.prob,
                "quality": best.quality,
                "thumbnail_url": track_thumbnail_url(video_id, number),
            },
            "subject": track.subject,
            "similarity": track.similarity,
        }
        if embedding:
            body["embedding"] = np.frombuffer(track.vec, np.float32).tolist()
        bodies.append(body)
    return bodies


def render_ingest(result: IngestResult, total_ms: float) -> IngestBody:
    photos: list[IngestedPhotoBody] = []
    for photo in result.photos:
        out: IngestedPhotoBody = {"photo_id": photo.photo_id, "status": photo.status}
        if photo.error is not None:
            out["error"] = _error_body(photo.error)
        else:
            out["new"] = photo.new
            out["faces"] = [
                {
                    "face_id": face.face_id,
                    "bbox": face.bbox,
                    "quality": face.quality,
                    "subject": face.subject,
                    "cluster": face.cluster,
                }
                for face in photo.faces
            ]
        photos.append(out)
    return {
        "collection": result.collection,
        "photos": photos,
        "took": took(total_ms, result.took_ms),
        "recognizer": _model(result.recognizer),
    }


def job_state_body(state: JobState) -> JobStateBody:
    """A job as GET /results answers it; also the body of its webhook (api/courier.py)."""
    body: JobStateBody = {
        "id": state.id,
        "status": state.status.value,
        "created": state.created,
        "started": state.started,
        "finished": state.finished,
        "worker": None if state.worker is None else worker_id(state.worker),
        "attempts": state.attempts,
    }
    if state.error is not None:
        body["error"] = error_detail(state.error)
    elif state.result is not None and state.render is not None:
        total_ms = ((state.finished or state.created) - state.created) * 1000
        try:
            body["result"] = render_result(state.render, state.result, total_ms)
        except FaceRestError as exc:  # api_ver 1: one bad image fails the request
            body["status"] = JobStatus.FAILED.value
            body["error"] = error_detail(exc.info())
    if state.progress is not None:
        body["progress"] = {"done": state.progress[0], "total": state.progress[1]}
    if state.callback is not None:
        callback = state.callback
        body["callback"] = {
            "status": callback.status.value,
            "attempts": callback.attempts,
            "last_error": callback.last_error or None,
        }
    return body


def _msgpack_default(value: object) -> object:
    if isinstance(value, np.ndarray):
        return cast(list[float], value.tolist())
    raise TypeError(f"cannot serialise {type(value).__name__}")


def to_json(body: Any) -> bytes:
    """A body as the API sends it in JSON (the one place its JSON options are chosen)."""
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def encode(body: Any, msgpack_wanted: bool, status: int = 200) -> Response:
    if msgpack_wanted:
        packed = msgpack.packb(body, default=_msgpack_default, use_bin_type=True)
        return Response(packed, status=status, mimetype=MSGPACK)
    return Response(to_json(body), status=status, mimetype="application/json")
