"""Typed results: frozen dataclasses built from the service's answers (the envelope, api_ver 2).

Coordinates are pixels of the full-size, upright input image. ``vec`` is L2-normalised: compare
two faces with a dot product, and only vectors of the same ``recognizer`` (name and version).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Point = tuple[float, float]
Box = tuple[float, float, float, float]


def _points(value: Any) -> tuple[Point, ...] | None:
    return None if value is None else tuple((float(x), float(y)) for x, y in value)


def _bytes(value: Any) -> bytes | None:
    """An aligned crop: raw bytes from MessagePack, base64 text from JSON."""
    if value is None:
        return None
    return value if isinstance(value, bytes) else base64.b64decode(value)


@dataclass(frozen=True, slots=True)
class Quality:
    """A face's quality, with return_quality (the service's docs/recognition.md#face-quality)."""

    quality: float  # 0-1: sharpness x cos(yaw) x cos(pitch) x size factor
    sharpness: float  # 0-1
    yaw: float  # degrees
    pitch: float
    roll: float
    size: float  # the box's shorter side, px

    @classmethod
    def from_wire(cls, quality: Mapping[str, Any] | None) -> Quality | None:
        if quality is None:
            return None
        return cls(**{name: float(quality[name]) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class Face:
    bbox: Box  # x1, y1, x2, y2
    prob: float  # detection score
    landmarks: tuple[Point, ...] | None = None  # the 5 keypoints, with return_landmarks
    vec: tuple[float, ...] | None = None  # None with extract_embedding=False
    norm: float | None = None  # of the raw embedding: low values hint at a blurry or non-face
    gender: Literal["female", "male"] | None = None
    gender_score: float | None = None
    age: float | None = None
    landmarks106: tuple[Point, ...] | None = None
    facedata: bytes | None = None  # the aligned 112x112 crop, JPEG
    quality: Quality | None = None  # with return_quality

    @classmethod
    def from_wire(cls, face: Mapping[str, Any]) -> Face:
        x1, y1, x2, y2 = face.get("bbox_float") or face["bbox"]
        return cls(
            bbox=(float(x1), float(y1), float(x2), float(y2)),
            prob=float(face["prob"]),
            landmarks=_points(face.get("landmarks_float") or face.get("landmarks")),
            vec=None if face.get("vec") is None else tuple(float(v) for v in face["vec"]),
            norm=face.get("norm"),
            gender=face.get("gender"),
            gender_score=face.get("gender_score"),
            age=face.get("age"),
            landmarks106=_points(face.get("landmarks106")),
            facedata=_bytes(face.get("facedata")),
            quality=Quality.from_wire(face.get("quality")),
        )


@dataclass(frozen=True, slots=True)
class ImageError:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ImageResult:
    """One image of a request, in request order (``images``, then ``urls``)."""

    ok: bool
    faces: tuple[Face, ...] = ()
    size: tuple[int, int] | None = None  # width, height
    error: ImageError | None = None
    took_ms: float = 0.0
    timings: Mapping[str, float] | None = None

    @classmethod
    def from_wire(cls, image: Mapping[str, Any]) -> ImageResult:
        error = image.get("error")
        size = image.get("size")
        return cls(
            ok=image["status"] == "ok",
            faces=tuple(Face.from_wire(face) for face in image.get("faces") or ()),
            size=None if size is None else (int(size[0]), int(size[1])),
            error=None if error is None else ImageError(error["code"], error["message"]),
            took_ms=float(image.get("took_ms") or 0.0),
            timings=image.get("timings"),
        )


@dataclass(frozen=True, slots=True)
class ModelRef:
    key: str
    name: str
    version: str
    license: str

    @classmethod
    def from_wire(cls, model: Mapping[str, Any]) -> ModelRef:
        return cls(model["key"], model["name"], model["version"], model["license"])


@dataclass(frozen=True, slots=True)
class ExtractResult:
    images: tuple[ImageResult, ...]
    total_ms: float
    detector: ModelRef | None = None
    recognizer: ModelRef | None = None  # vectors compare only within one recognizer
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ExtractResult:
        detector, recognizer = body.get("detector"), body.get("recognizer")
        return cls(
            images=tuple(ImageResult.from_wire(image) for image in body["data"]),
            total_ms=float(body["took"]["total_ms"]),
            detector=None if detector is None else ModelRef.from_wire(detector),
            recognizer=None if recognizer is None else ModelRef.from_wire(recognizer),
            warnings=tuple(body.get("warnings", ())),
        )


def _box(value: Any) -> Box:
    x1, y1, x2, y2 = value
    return float(x1), float(y1), float(x2), float(y2)


def _error(value: Any) -> ImageError | None:
    return None if value is None else ImageError(value["code"], value["message"])


@dataclass(frozen=True, slots=True)
class EnrolledFace:
    """A face of a subject in a collection: its id (for delete_face and the thumbnail)."""

    id: str
    subject: str
    bbox: Box  # in the photo it was enrolled from
    prob: float
    faces_in_image: int  # faces found in that photo (the largest was enrolled)
    thumbnail_url: str  # the aligned 112x112 crop, JPEG (``thumbnail``)
    new: bool = True  # False: this photo was enrolled for this subject before (by its hash)

    @classmethod
    def from_wire(cls, face: Mapping[str, Any]) -> EnrolledFace:
        return cls(
            id=face["id"],
            subject=face["subject"],
            bbox=_box(face["bbox"]),
            prob=float(face["prob"]),
            faces_in_image=int(face["faces_in_image"]),
            thumbnail_url=face["thumbnail_url"],
            new=bool(face.get("new", True)),
        )


@dataclass(frozen=True, slots=True)
class Enrollment:
    collection: str
    faces: tuple[EnrolledFace, ...]  # one per image, in request order
    total_ms: float
    recognizer: ModelRef

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Enrollment:
        return cls(
            collection=body["collection"],
            faces=tuple(EnrolledFace.from_wire(face) for face in body["faces"]),
            total_ms=float(body["took"]["total_ms"]),
            recognizer=ModelRef.from_wire(body["recognizer"]),
        )


@dataclass(frozen=True, slots=True)
class IngestedFace:
    face_id: str
    bbox: Box  # zeros for a photo stored before
    quality: float
    cluster: int | None  # None: in no cluster yet
    subject: str | None  # the name a person gave its cluster


@dataclass(frozen=True, slots=True)
class IngestedPhoto:
    photo_id: str
    ok: bool
    new: bool = True  # False: this id or these bytes were ingested before (answered as stored)
    faces: tuple[IngestedFace, ...] = ()
    error: ImageError | None = None

    @classmethod
    def from_wire(cls, photo: Mapping[str, Any]) -> IngestedPhoto:
        error = photo.get("error")
        return cls(
            photo_id=photo["photo_id"],
            ok=photo["status"] == "ok",
            new=bool(photo.get("new", True)),
            faces=tuple(
                IngestedFace(f["face_id"], _box(f["bbox"]), float(f["quality"]), f["cluster"], f["subject"])
                for f in photo.get("faces", ())
            ),
            error=None if error is None else ImageError(error["code"], error["message"]),
        )


@dataclass(frozen=True, slots=True)
class Ingestion:
    """People discovery: each photo's faces, stored and clustered."""

    collection: str
    photos: tuple[IngestedPhoto, ...]  # in request order
    total_ms: float
    recognizer: ModelRef

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Ingestion:
        return cls(
            collection=body["collection"],
            photos=tuple(IngestedPhoto.from_wire(p) for p in body["photos"]),
            total_ms=float(body["took"]["total_ms"]),
            recognizer=ModelRef.from_wire(body["recognizer"]),
        )


@dataclass(frozen=True, slots=True)
class Match:
    subject: str
    similarity: float  # cosine, of the subject's best enrolled face


@dataclass(frozen=True, slots=True)
class RecognizedFace:
    bbox: Box
    prob: float
    subject: str | None  # None: nobody in the collection reaches the threshold
    similarity: float | None  # the subject's, else the best match's
    matches: tuple[Match, ...]  # the top subjects, best first
    norm: float | None = None  # of the raw embedding, as Face's
    landmarks: tuple[Point, ...] | None = None  # with return_landmarks
    landmarks106: tuple[Point, ...] | None = None  # with return_landmarks="106"
    gender: Literal["female", "male"] | None = None  # with extract_ga
    gender_score: float | None = None
    age: float | None = None
    quality: Quality | None = None  # with return_quality

    @classmethod
    def from_wire(cls, face: Mapping[str, Any]) -> RecognizedFace:
        similarity = face.get("similarity")
        return cls(
            bbox=_box(face["bbox"]),
            prob=float(face["prob"]),
            subject=face.get("subject"),
            similarity=None if similarity is None else float(similarity),
            matches=tuple(Match(m["subject"], float(m["similarity"])) for m in face["matches"]),
            norm=face.get("norm"),
            landmarks=_points(face.get("landmarks")),
            landmarks106=_points(face.get("landmarks106")),
            gender=face.get("gender"),
            gender_score=face.get("gender_score"),
            age=face.get("age"),
            quality=Quality.from_wire(face.get("quality")),
        )


@dataclass(frozen=True, slots=True)
class RecognizedImage:
    ok: bool
    faces: tuple[RecognizedFace, ...] = ()
    error: ImageError | None = None
    took_ms: float = 0.0

    @classmethod
    def from_wire(cls, image: Mapping[str, Any]) -> RecognizedImage:
        return cls(
            ok=image["status"] == "ok",
            faces=tuple(RecognizedFace.from_wire(face) for face in image.get("faces") or ()),
            error=_error(image.get("error")),
            took_ms=float(image.get("took_ms") or 0.0),
        )


@dataclass(frozen=True, slots=True)
class Recognition:
    collection: str
    threshold: float  # the similarity a face needs to be named
    images: tuple[RecognizedImage, ...]  # in request order (images, then urls)
    total_ms: float
    recognizer: ModelRef

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Recognition:
        return cls(
            collection=body["collection"],
            threshold=float(body["threshold"]),
            images=tuple(RecognizedImage.from_wire(image) for image in body["data"]),
            total_ms=float(body["took"]["total_ms"]),
            recognizer=ModelRef.from_wire(body["recognizer"]),
        )


@dataclass(frozen=True, slots=True)
class Verification:
    same: bool  # similarity >= threshold
    similarity: float
    threshold: float
    faces: tuple[Box, ...]  # the face compared in each image
    total_ms: float
    recognizer: ModelRef

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Verification:
        return cls(
            same=bool(body["same"]),
            similarity=float(body["similarity"]),
            threshold=float(body["threshold"]),
            faces=tuple(_box(box) for box in body["faces"]),
            total_ms=float(body["took"]["total_ms"]),
            recognizer=ModelRef.from_wire(body["recognizer"]),
        )


@dataclass(frozen=True, slots=True)
class Reindexed:
    collection: str
    faces: int
    dropped: int  # crops the new recognizer gave no vector for (removed)
    recognizer: ModelRef

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Reindexed:
        return cls(
            body["collection"],
            int(body["faces"]),
            int(body["dropped"]),
            ModelRef.from_wire(body["recognizer"]),
        )


@dataclass(frozen=True, slots=True)
class Compacted:
    collection: str
    faces: int  # kept: the collection's storage holds only these now
    log_flushed: bool  # the database's WAL was flushed too (docs/recognition.md)
    # Redis's files were rewritten without the collection's finished jobs (False from older servers)
    redis_rewritten: bool = False

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Compacted:
        return cls(
            body["collection"],
            int(body["faces"]),
            bool(body["log_flushed"]),
            bool(body.get("redis_rewritten", False)),
        )


@dataclass(frozen=True, slots=True)
class Recognizer:
    key: str
    name: str
    version: str
    license: str
    dimension: int


@dataclass(frozen=True, slots=True)
class Collection:
    name: str
    recognizer: Recognizer  # made its vectors: only it can search them
    created: float  # Unix time
    subjects: int
    faces: int

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Collection:
        r = body["recognizer"]
        return cls(
            name=body["collection"],
            recognizer=Recognizer(r["key"], r["name"], r["version"], r["license"], int(r["dimension"])),
            created=float(body["created"]),
            subjects=int(body["subjects"]),
            faces=int(body["faces"]),
        )


def collections_from_wire(body: Mapping[str, Any]) -> tuple[Collection, ...]:
    return tuple(Collection.from_wire(item) for item in body["collections"])


@dataclass(frozen=True, slots=True)
class Subject:
    subject: str
    faces: int
    created: float


@dataclass(frozen=True, slots=True)
class SubjectPage:
    subjects: tuple[Subject, ...]
    offset: int
    limit: int
    next_offset: int | None  # None on the last page

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> SubjectPage:
        offset, limit = int(body["offset"]), int(body["limit"])
        return cls(
            subjects=tuple(
                Subject(s["subject"], int(s["faces"]), float(s["created"])) for s in body["subjects"]
            ),
            offset=offset,
            limit=limit,
            next_offset=None if body.get("next") is None else offset + limit,
        )


@dataclass(frozen=True, slots=True)
class SubjectFaces:
    collection: str
    subject: str
    faces: tuple[EnrolledFace, ...]

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> SubjectFaces:
        return cls(
            body["collection"], body["subject"], tuple(EnrolledFace.from_wire(f) for f in body["faces"])
        )


def deleted_from_wire(body: Mapping[str, Any]) -> int:
    return int(body["deleted"])


JobStatus = Literal["queued", "running", "done", "failed"]
JobResult = ExtractResult | Recognition | Enrollment | Verification | Reindexed | Compacted


def job_result_from_wire(body: Mapping[str, Any]) -> JobResult:
    """A finished job's result, by its shape (each job kind answers as its endpoint does)."""
    if "same" in body:
        return Verification.from_wire(body)
    if "dropped" in body:
        return Reindexed.from_wire(body)
    if "log_flushed" in body:
        return Compacted.from_wire(body)
    if "collection" in body:
        return Recognition.from_wire(body) if "data" in body else Enrollment.from_wire(body)
    return ExtractResult.from_wire(body)


@dataclass(frozen=True, slots=True)
class Callback:
    """A job's webhook delivery (the service's docs/webhooks.md)."""

    status: Literal["pending", "retrying", "delivered", "failed"]
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Job:
    """An asynchronous job: its state now, and its result once done (the endpoint's own type)."""

    id: str
    status: JobStatus
    result: JobResult | None = None
    error: ImageError | None = None
    callback: Callback | None = None  # with a callback_url: its delivery

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Job:
        result = body.get("result")
        callback = body.get("callback")
        return cls(
            id=body["id"],
            status=body["status"],
            result=None if result is None else job_result_from_wire(result),
            error=_error(body.get("error")),
            callback=None
            if callback is None
            else Callback(callback["status"], callback["attempts"], callback.get("last_error")),
        )


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    det_name: str | None
    rec_name: str | None
    inference_backend: str
    detectors: tuple[str, ...]
    attributes: tuple[str, ...]
    limits: Mapping[str, float]
    raw: Mapping[str, Any] = field(repr=False)  # the whole /info answer: workers, licenses, ...

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> ServerInfo:
        models = body["models"]
        return cls(
            version=body["version"],
            det_name=models.get("det_name"),
            rec_name=models.get("rec_name"),
            inference_backend=models.get("inference_backend", ""),
            detectors=tuple(body.get("detectors", ())),
            attributes=tuple(body.get("attributes", ())),
            limits=body.get("limits", {}),
            raw=body,
        )


@dataclass(frozen=True, slots=True)
class VideoSubmitted:
    """POST /videos' answer: the video's id and where to follow it."""

    id: str
    status_url: str

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> VideoSubmitted:
        return cls(body["id"], body["status_url"])


@dataclass(frozen=True, slots=True)
class TrackFace:
    """A track's best frame: where and when its face was seen best. ``bbox`` in px of the
    upright frame (the video's rotation applied); ``thumbnail_url`` a path on the API (send the
    API key to fetch it)."""

    time_s: float
    bbox: Box
    prob: float
    quality: float
    thumbnail_url: str

    @classmethod
    def from_wire(cls, best: Mapping[str, Any]) -> TrackFace:
        return cls(
            float(best["time_s"]),
            _box(best["bbox"]),
            float(best["prob"]),
            float(best["quality"]),
            best["thumbnail_url"],
        )


@dataclass(frozen=True, slots=True)
class Track:
    """One face followed across a video's frames. ``subject``: who it is in the collection the
    video was matched against (None: nobody, or no collection); ``embedding`` with
    ``embedding=True`` at upload."""

    track: int
    start_s: float
    end_s: float
    frames: int  # frames analysed in which it was seen
    best: TrackFace
    subject: str | None = None
    similarity: float | None = None
    embedding: tuple[float, ...] | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @classmethod
    def from_wire(cls, track: Mapping[str, Any]) -> Track:
        embedding = track.get("embedding")
        similarity = track.get("similarity")
        return cls(
            track=int(track["track"]),
            start_s=float(track["start_s"]),
            end_s=float(track["end_s"]),
            frames=int(track["frames"]),
            best=TrackFace.from_wire(track["best"]),
            subject=track.get("subject"),
            similarity=None if similarity is None else float(similarity),
            embedding=None if embedding is None else tuple(float(v) for v in embedding),
        )


@dataclass(frozen=True, slots=True)
class VideoProgress:
    segments_done: int
    segments: int
    frames_done: int
    frames: int  # frames to analyse (an estimate until the video is done)

    @property
    def fraction(self) -> float:
        """0 to 1, by segments (frames are estimated from the header until each segment is read)."""
        return self.segments_done / self.segments if self.segments else 0.0


@dataclass(frozen=True, slots=True)
class Video:
    """A video's state (GET /videos/{id}): its tracks so far while it runs (partial results),
    all of them once ``status`` is "done"."""

    id: str
    status: JobStatus
    progress: VideoProgress
    duration_s: float | None
    tracks: tuple[Track, ...]
    error: ImageError | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    @classmethod
    def from_wire(cls, body: Mapping[str, Any]) -> Video:
        progress = body.get("progress") or {}
        duration = body.get("duration_s")
        return cls(
            id=body["id"],
            status=body["status"],
            progress=VideoProgress(
                segments_done=int(progress.get("segments_done", 0)),
                segments=int(progress.get("segments", 0)),
                frames_done=int(progress.get("frames_done", 0)),
                frames=int(progress.get("frames", 0)),
            ),
            duration_s=None if duration is None else float(duration),
            tracks=tuple(Track.from_wire(track) for track in body.get("tracks") or ()),
            error=_error(body.get("error")),
        )


def cancelled_from_wire(body: Any) -> None:
    """DELETE /videos/{id}: nothing to read (the video, its upload and its results are gone)."""
