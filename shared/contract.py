"""The job contract: every value that crosses Redis between the API and the workers.

Each type here is a msgspec Struct, serialised once (MessagePack, or JSON for heartbeats) and
validated once on decode by the typed decoders at the bottom. A job is a tagged union member:
a new job kind is one more Struct with its own ``tag`` added to ``Job`` (and its result to
``JobResult``), never a new string key. msgspec against pydantic: docs/performance.md.

Coordinate frame of every face: pixels of the full-size, upright (EXIF-rotated) input image.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec

DEFAULT_MAX_SIZE = (640, 640)
# insightface's own default. InsightFace-REST's 0.6 found no face in 2.5 % of CFP's profile
# photos, 0.5 in 0.75 %, at the cost of one detection in 20 photos without faces
# (docs/accuracy.md, python -m bench.cfp_detection).
DEFAULT_THRESHOLD = 0.5


class ErrorInfo(msgspec.Struct, frozen=True, omit_defaults=True):
    """An error as stored and sent: a stable code (shared/errors.py's table) and a message."""

    code: str
    message: str
    # model_not_loaded: the models that are loaded, so a client can choose again.
    available: tuple[str, ...] = ()


class ModelRef(msgspec.Struct, frozen=True):
    """Which model made a result: vectors of different recognizers are never comparable."""

    key: str
    name: str
    version: str
    license: str


class AnalysisOptions(msgspec.Struct, frozen=True):
    """Per-job options of an extract job; passed as arguments, never written onto shared objects."""

    max_size: tuple[int, int] = DEFAULT_MAX_SIZE
    threshold: float = DEFAULT_THRESHOLD
    limit_faces: int = 256
    min_face_size: int = 0
    extract_embedding: bool = True
    return_landmarks: bool = False
    return_face_data: bool = False
    embed_only: bool = False
    verbose_timings: bool = False
    return_landmarks106: bool = False
    extract_ga: bool = False
    detector: str | None = None  # None: the worker's default detector
    # Embed each face's aligned crop and its mirror image, one vector from both; None: the
    # worker's FACEREST_FLIP.
    flip: bool | None = None
    # Faces found across all of the job's images at most (the API's max_faces_per_request): past
    # it the job fails with limit_exceeded before any face is embedded. 0: no limit (jobs a worker
    # makes itself: a reindex embeds every stored crop).
    max_faces_total: int = 0
    # Each face's FaceQuality (worker/quality.py); needs the aligned crop, so it aligns faces.
    return_quality: bool = False

    def attribute_models(self) -> list[str]:
        """The attribute models (registry keys) these options need."""
        wanted = [("genderage", self.extract_ga), ("landmarks106", self.return_landmarks106)]
        return [name for name, needed in wanted if needed]


class ExtractJob(msgspec.Struct, frozen=True, tag="extract"):
    """Detect, align, embed: one result per image, in order. Only images the API accepted."""

    images: list[bytes]
    options: AnalysisOptions
    request_id: str


class EnrollJob(msgspec.Struct, frozen=True, tag="enroll"):
    """Embed one face per image and add them to a subject of a collection (created on first use,
    bound to the worker's recognizer). All images or none: one without a face fails the job."""

    images: list[bytes]
    collection: str
    subject: str
    face: Literal["largest", "only"]
    options: AnalysisOptions
    request_id: str
    data_count: int  # images.data first, then images.urls: for naming an image in an error
    # The enrolled face's quality (worker/quality.py) must reach this, else low_quality; 0: any.
    min_quality: float = 0.0


class RecognizeJob(msgspec.Struct, frozen=True, tag="recognize"):
    """Embed every face and search the collection: 1:N, open set."""

    images: list[bytes]
    collection: str
    limit: int
    threshold: float | None  # None: the recognizer's default (shared/recognition.py)
    options: AnalysisOptions
    request_id: str


class VerifyJob(msgspec.Struct, frozen=True, tag="verify"):
    """1:1: the largest face of two images, or of one image against a subject of a collection."""

    images: list[bytes]
    collection: str | None
    subject: str | None
    threshold: float | None
    options: AnalysisOptions
    request_id: str
    data_count: int
    # With collection and subject: compare with this one face of the subject instead of its best
    # (CompreFace's /faces/{image_id}/verify).
    face_id: str | None = None


class ReindexJob(msgspec.Struct, frozen=True, tag="reindex"):
    """Embed a collection's stored aligned crops with this worker's recognizer and rebind it."""

    collection: str
    request_id: str


class CompactJob(msgspec.Struct, frozen=True, tag="compact"):
    """Rewrite a collection's storage so no copy of a deleted face is left in the gallery's files."""

    collection: str
    request_id: str


class IngestJob(msgspec.Struct, frozen=True, tag="ingest"):
    """People discovery: store every face of every photo and cluster them (worker/people.py)."""

    images: list[bytes]
    collection: str
    photo_ids: list[str]  # one per image; "" : the service makes one from the image's digest
    options: AnalysisOptions
    request_id: str
    data_count: int


class ReclusterJob(msgspec.Struct, frozen=True, tag="recluster"):
    """Cluster a collection's discovered faces again, keeping what a person decided."""

    collection: str
    request_id: str


class VideoJob(msgspec.Struct, frozen=True, tag="video"):
    """A whole video (docs/video.md): never run itself. Its segments are VideoSegmentJobs with
    the ids ``segment_job_id(video id, index)``; the worker that records the last of them joins
    their tracks and finishes this job with a VideoResult. A delivered copy (the reaper sends
    unfinished jobs again) only settles it: finishes it if every segment is in, else nothing."""

    segments: int
    fps: float  # frames analysed per second of video; 0: every frame
    collection: str | None  # identify tracks against it; None: no identification
    threshold: float | None  # the open-set threshold; None: the recognizer's default
    embedding: bool  # return each track's embedding
    request_id: str
    # Never read (the video's hash, shared/videos.py, holds the counts shown). Still written:
    # the previous version's workers and APIs require them to decode this job (a keyed map:
    # fields missing, not fields added, fail) while a rolling upgrade runs both. With defaults
    # here, the next version may stop writing them, and then drop them.
    duration_s: float = 0.0
    frames: int = 0


class VideoSegmentJob(msgspec.Struct, frozen=True, tag="video_segment"):
    """One segment of a video, cut at keyframes and remuxed (no re-encoding) into a small file
    of its own: a worker decodes only these bytes. Times in seconds of the whole video."""

    video_id: str
    index: int
    data: bytes
    start_s: float  # where the segment starts in the video (its first keyframe)
    end_s: float  # where the next segment starts (the video's duration for the last one)
    frames: int  # the frames (packets) in ``data``: a decoder that returns fewer met corrupt data
    fps: float
    rotation: int  # degrees clockwise to turn decoded frames upright (the display matrix)
    options: AnalysisOptions
    request_id: str


# Every job kind a worker runs: one ``case`` each in worker/tasks.py.
Job = (
    ExtractJob
    | EnrollJob
    | RecognizeJob
    | VerifyJob
    | ReindexJob
    | CompactJob
    | IngestJob
    | ReclusterJob
    | VideoJob
    | VideoSegmentJob
)


def segment_job_id(video_id: str, index: int) -> str:
    """The job id of a video's segment: derived, so a cancellation finds every one."""
    return f"{video_id}.{index}"


class FaceQuality(msgspec.Struct, frozen=True):
    """How usable a face is for recognition (worker/quality.py, docs/recognition.md)."""

    quality: float  # 0 ... 1: sharpness x cos(yaw) x cos(pitch) x size factor
    sharpness: float  # 0 ... 1: variance of the Laplacian of the aligned crop, squashed
    yaw: float  # degrees, estimated from the 5 keypoints; + : nose to the image's right
    pitch: float  # degrees; + : looking up
    roll: float  # degrees; + : eye line turned clockwise
    size: float  # the box's shorter side, full-size px


class Face(msgspec.Struct, frozen=True, omit_defaults=True):
    """One face in full-size image pixels. ``vec`` is float32 bytes, L2-normalised."""

    bbox: tuple[float, float, float, float]  # x1, y1, x2, y2
    prob: float
    landmarks: list[tuple[float, float]]  # eyes, nose, mouth corners
    vec: bytes | None = None
    norm: float | None = None  # of the raw embedding: a quality hint
    facedata: bytes | None = None  # the aligned crop, JPEG
    gender: Literal["female", "male"] | None = None
    gender_score: float | None = None  # probability of the reported gender, 0.5 ... 1
    age: float | None = None  # years
    landmarks106: list[tuple[float, float]] | None = None
    quality: FaceQuality | None = None  # with return_quality


class ImageResult(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Literal["ok", "error"]
    took_ms: float
    size: tuple[int, int] | None = None  # width, height
    faces: tuple[Face, ...] = ()
    error: ErrorInfo | None = None
    timings: dict[str, float] | None = None

    @classmethod
    def failed(cls, error: ErrorInfo, took_ms: float = 0.0) -> ImageResult:
        return cls(status="error", took_ms=took_ms, error=error)


class ExtractResult(msgspec.Struct, frozen=True, tag="extract"):
    images: list[ImageResult]
    worker: str
    took_ms: float
    detector: ModelRef
    recognizer: ModelRef


class EnrolledFace(msgspec.Struct, frozen=True):
    id: str
    subject: str
    bbox: tuple[float, float, float, float]
    prob: float
    faces_in_image: int
    new: bool  # False: this image was enrolled for this subject before (idempotent)


class EnrollResult(msgspec.Struct, frozen=True, tag="enroll"):
    collection: str
    faces: list[EnrolledFace]
    worker: str
    took_ms: float
    recognizer: ModelRef


class SubjectMatch(msgspec.Struct, frozen=True):
    subject: str
    similarity: float


class RecognizedFace(msgspec.Struct, frozen=True, omit_defaults=True):
    bbox: tuple[float, float, float, float]
    prob: float
    subject: str | None  # None: nobody in the collection reaches the threshold
    similarity: float | None  # the chosen subject's, or the best match's when subject is None
    matches: list[SubjectMatch]
    # What /extract tells of the face, as the request asked (one call draws and names faces).
    norm: float | None = None
    landmarks: list[tuple[float, float]] | None = None
    landmarks106: list[tuple[float, float]] | None = None
    gender: Literal["female", "male"] | None = None
    gender_score: float | None = None
    age: float | None = None
    quality: FaceQuality | None = None
    # The face's embedding (float32 bytes, L2-normalised), only where the job's options ask for
    # it (extract_embedding; the drop-in's CompreFace calculator plugin): 2 KB a face otherwise
    # stored for nothing.
    vec: bytes | None = None


class RecognizedImage(msgspec.Struct, frozen=True, omit_defaults=True):
    status: Literal["ok", "error"]
    took_ms: float
    faces: list[RecognizedFace] = []
    error: ErrorInfo | None = None


class RecognizeResult(msgspec.Struct, frozen=True, tag="recognize"):
    collection: str
    images: list[RecognizedImage]
    threshold: float
    worker: str
    took_ms: float
    recognizer: ModelRef


class VerifyResult(msgspec.Struct, frozen=True, tag="verify"):
    same: bool
    similarity: float
    threshold: float
    faces: list[tuple[float, float, float, float]]  # the box compared in each image
    worker: str
    took_ms: float
    recognizer: ModelRef


class ReindexResult(msgspec.Struct, frozen=True, tag="reindex"):
    collection: str
    faces: int
    dropped: int  # crops in which the new recognizer's pipeline found nothing to embed
    worker: str
    took_ms: float
    recognizer: ModelRef


class CompactResult(msgspec.Struct, frozen=True, tag="compact"):
    collection: str
    faces: int  # kept
    log_flushed: bool  # the database's WAL was flushed too (shared/gallery Compaction)
    worker: str
    took_ms: float
    # The collection's finished jobs left Redis and its files were rewritten (shared/jobs.py);
    # False in results stored before it existed.
    redis_rewritten: bool = False


class IngestedFace(msgspec.Struct, frozen=True):
    face_id: str
    bbox: tuple[float, float, float, float]
    quality: float
    cluster: int | None  # None: not (yet) in a cluster
    subject: str | None  # the cluster's name, if a person gave it one


class IngestedPhoto(msgspec.Struct, frozen=True, omit_defaults=True):
    photo_id: str
    status: Literal["ok", "error"]
    faces: list[IngestedFace] = []
    new: bool = True  # False: this photo id or these bytes were ingested before
    error: ErrorInfo | None = None


class IngestResult(msgspec.Struct, frozen=True, tag="ingest"):
    collection: str
    photos: list[IngestedPhoto]
    worker: str
    took_ms: float
    recognizer: ModelRef


class ReclusterResult(msgspec.Struct, frozen=True, tag="recluster"):
    collection: str
    clusters: int
    faces: int
    worker: str
    took_ms: float


class TrackFace(msgspec.Struct, frozen=True):
    """A track's best face: the frame where quality x prob is highest. ``bbox`` in upright
    frame px; ``thumbnail`` a JPEG of the face with a margin."""

    time_s: float
    bbox: tuple[float, float, float, float]
    prob: float
    quality: float
    thumbnail: bytes


class Track(msgspec.Struct, frozen=True, omit_defaults=True):
    """A face followed across analysed frames (worker/tracking.py). ``vec``: float32 bytes,
    L2-normalised, the mean of its best frames' embeddings (identity from several frames, not
    one). ``first_box``/``last_box`` let tracks cut at a segment border be joined."""

    start_s: float
    end_s: float
    frames: int
    best: TrackFace
    vec: bytes
    first_box: tuple[float, float, float, float]
    last_box: tuple[float, float, float, float]
    # Weight of ``vec``: the summed quality x prob of the frames in it, for joining means.
    weight: float = 1.0
    subject: str | None = None
    similarity: float | None = None


class VideoSegmentResult(msgspec.Struct, frozen=True, tag="video_segment"):
    """One segment analysed: its tracks, and the frames it analysed."""

    video_id: str
    index: int
    start_s: float
    frames: int
    tracks: list[Track]
    worker: str
    took_ms: float


class VideoResult(msgspec.Struct, frozen=True, tag="video"):
    """A finished video: its segments' tracks joined, in order of start, identified against
    the collection when it named one."""

    video_id: str
    tracks: list[Track]
    segments: int
    frames: int
    duration_s: float
    collection: str | None
    embedding: bool  # the request asked for each track's embedding
    worker: str
    took_ms: float  # the segments' analysis, summed over workers
    # Never read; written for the previous version's APIs, as VideoJob's duration_s and frames.
    threshold: float | None = None


JobResult = (
    VideoResult
    | VideoSegmentResult
    | ExtractResult
    | EnrollResult
    | RecognizeResult
    | VerifyResult
    | ReindexResult
    | CompactResult
    | IngestResult
    | ReclusterResult
)


class RenderSettings(msgspec.Struct, frozen=True):
    """How the API answers a job; kept with the job's state, never read by a worker.

    ``api_errors`` holds the images the API refused itself (bad base64, an unfetchable URL),
    by their position in the request; they are merged with the worker's results when rendered.
    """

    api_ver: Literal["1", "2"]
    landmarks: bool
    data_count: int  # images.data come first, then images.urls
    api_errors: dict[int, ErrorInfo] = {}
    # The SHA-256 digest (hex) of the creator's API key; "" with keys off. /results answers only it.
    owner: str = ""
    # Options the request asked for that the service does not serve (detect_masks), told in the answer.
    warnings: tuple[str, ...] = ()


class RecognizerInfo(msgspec.Struct, frozen=True):
    key: str
    name: str
    version: str
    license: str
    dimension: int


class ModelInfo(msgspec.Struct, frozen=True):
    """A loaded model with its provenance, for /info."""

    name: str
    key: str
    kind: str
    version: str
    package: str
    sha256: str
    license: str
    commercial_use: bool
    description: str


class WorkerInfo(msgspec.Struct, frozen=True):
    """A worker's heartbeat: who it is and which models requests may choose on it."""

    name: str
    device: str
    pid: int
    concurrency: int
    started: float
    profile: str
    models: list[ModelInfo]
    detectors: list[str]  # the first serves requests that name none
    recognizer: RecognizerInfo
    attributes: list[str]


class Heartbeat(msgspec.Struct, frozen=True):
    """A worker's entry in the registry hash: its info and when it counts as gone.

    ``expires_at`` is in Redis's clock (TIME), never a host's, so that hosts whose clocks drift
    still agree on who is alive; the job store's Lua scripts read it (cjson) to judge claims.
    """

    info: WorkerInfo
    expires_at: float
    # Shutting down gracefully: it finishes its jobs (and keeps its claims) but takes no new ones.
    draining: bool = False


class IdempotencyRecord(msgspec.Struct, frozen=True):
    """What an ``Idempotency-Key`` stands for: the job it created, a digest of that body and the
    request's method and path ("" in records stored before it was kept)."""

    job_id: str
    body_digest: str
    route: str = ""


WORKER_ID_HEX = 12


def worker_id(name: str) -> str:
    """The opaque id clients see for a worker: a short hash of its name, stable for the worker's
    life. The name itself (facerest-cpu-<pid>@<host>) would tell every client the host and the pid;
    operators find it in the worker's log and in /info (behind the API keys when they are on)."""
    return "w-" + hashlib.sha256(name.encode()).hexdigest()[:WORKER_ID_HEX]


_ENCODER = msgspec.msgpack.Encoder()
_JSON_ENCODER = msgspec.json.Encoder()
_JOB = msgspec.msgpack.Decoder(Job)
_RESULT = msgspec.msgpack.Decoder(JobResult)
_RENDER = msgspec.msgpack.Decoder(RenderSettings)
_ERROR = msgspec.msgpack.Decoder(ErrorInfo)
_HEARTBEAT = msgspec.json.Decoder(Heartbeat)
_IDEMPOTENCY = msgspec.msgpack.Decoder(IdempotencyRecord)


def encode(value: msgspec.Struct) -> bytes:
    return _ENCODER.encode(value)


def decode_job(data: bytes) -> Job:
    return _JOB.decode(data)


def decode_result(data: bytes) -> JobResult:
    return _RESULT.decode(data)


def decode_render(data: bytes) -> RenderSettings:
    return _RENDER.decode(data)


def decode_error(data: bytes) -> ErrorInfo:
    return _ERROR.decode(data)


def decode_idempotency(data: bytes) -> IdempotencyRecord:
    return _IDEMPOTENCY.decode(data)


def encode_heartbeat(beat: Heartbeat) -> bytes:
    return _JSON_ENCODER.encode(beat)


def decode_heartbeat(data: bytes) -> Heartbeat:
    return _HEARTBEAT.decode(data)
