"""Every endpoint once: its signature, docstring, the ``Call`` it makes and the parser of its
answer, as a method of ``Endpoints``. Both clients inherit them: ``FaceRest`` (client.py) returns
the answer, ``AsyncFaceRest`` (aio.py) a coroutine of it. Adding an endpoint is a method here and
a typed result in types.py; its options, a TypedDict here.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    Literal,
    ParamSpec,
    Self,
    TypedDict,
    TypeVar,
    Unpack,
    cast,
    overload,
)
from urllib.parse import quote

from facerest_client._wire import IDEMPOTENCY_HEADER, Call, ImageInput, body_call, image_bytes
from facerest_client.names import check_id, check_name
from facerest_client.types import (
    Collection,
    Enrollment,
    ExtractResult,
    Ingestion,
    Job,
    Recognition,
    ServerInfo,
    SubjectFaces,
    SubjectPage,
    Verification,
    Video,
    VideoSubmitted,
    cancelled_from_wire,
    collections_from_wire,
    deleted_from_wire,
)

if TYPE_CHECKING:
    from facerest_client.aio import AsyncFaceRest
    from facerest_client.client import FaceRest

T = TypeVar("T")
P = ParamSpec("P")


# The options, as the service's request models (api/schemas.py) name them;
# tests/unit/test_client_api.py keeps the two sets of names equal.
class ExtractOptions(TypedDict, total=False):
    """/extract's options (README, POST /extract); left out: the service's default."""

    max_size: tuple[int, int] | int
    threshold: float  # detection score
    limit_faces: int
    min_face_size: int
    extract_embedding: bool
    return_landmarks: bool | Literal["106"]
    extract_ga: bool
    flip: bool  # embed the crop and its mirror image; left out: the server's FACEREST_FLIP
    return_face_data: bool
    embed_only: bool
    detector: str
    verbose_timings: bool
    img_req_headers: dict[str, str]
    callback_url: str  # POST the job's /results envelope here when it ends, signed (docs/webhooks.md)
    return_quality: bool  # each face's Quality


class DrawOptions(TypedDict, total=False):
    """/draw_detections' options."""

    max_size: tuple[int, int] | int
    threshold: float  # detection score
    limit_faces: int
    min_face_size: int
    detector: str
    draw_landmarks: bool | Literal["106"]
    draw_scores: bool
    draw_sizes: bool
    draw_ga: bool


class RecognitionOptions(TypedDict, total=False):
    """What enroll, recognize and verify share (docs/recognition.md); left out: the default."""

    max_size: tuple[int, int] | int
    det_threshold: float
    detector: str
    img_req_headers: dict[str, str]
    callback_url: str  # as extract's


class EnrollOptions(RecognitionOptions, total=False):
    face: Literal["largest", "only"]  # "only": a photo with several faces is refused
    min_quality: float  # a face whose quality is under it is refused (low_quality)


class RecognizeOptions(RecognitionOptions, total=False):
    limit: int  # matches per face
    threshold: float  # similarity to name a subject; default: the recognizer's calibrated one
    return_landmarks: bool | Literal["106"]  # as extract's
    extract_ga: bool  # gender and age, as extract's
    return_quality: bool  # as extract's


class VerifyOptions(RecognitionOptions, total=False):
    threshold: float  # similarity; default: the recognizer's calibrated one


class VideoOptions(TypedDict, total=False):
    """POST /videos' options (the service's docs/video.md); left out: the service's default."""

    fps: float  # frames analysed per second of video (default 2); 0: every frame
    collection: str  # identify each track against this collection's subjects
    recognition_threshold: float  # similarity to name a subject; default: the recognizer's
    embedding: bool  # each track's embedding
    # /extract's options that apply to a video's frames.
    max_size: tuple[int, int] | int
    threshold: float  # detection score
    limit_faces: int
    min_face_size: int
    detector: str
    flip: bool
    callback_url: str  # POST the finished video's result here, signed (docs/webhooks.md)


class Endpoint(Generic[T]):
    """A call and how to read its answer."""

    __slots__ = ("call", "parse")

    def __init__(self, call: Call, parse: Callable[[Any], T]) -> None:
        self.call = call
        self.parse = parse


class client_method(Generic[P, T]):  # noqa: N801 (used as a decorator, like property)
    """An ``Endpoints`` method as each client has it: on ``FaceRest`` it sends the call and returns
    the parsed answer, on ``AsyncFaceRest`` it is a coroutine function that does. The signature,
    for mypy (through ``P``) and for ``inspect``, is the declaration's."""

    def __init__(self, build: Callable[Concatenate[Endpoints, P], Endpoint[T]]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        declared = inspect.signature(build, eval_str=True)
        (answer,) = typing.get_args(declared.return_annotation)  # Endpoint[T]: T
        self.signature = declared.replace(
            parameters=list(declared.parameters.values())[1:], return_annotation=answer
        )

    def __repr__(self) -> str:  # what help(FaceRest) shows for the method
        return f"{self.build.__name__}{self.signature}"

    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: FaceRest, owner: type[Any]) -> Callable[P, T]: ...
    @overload
    def __get__(self, client: AsyncFaceRest, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, T]]: ...
    def __get__(self, client: Endpoints | None, owner: type[Any]) -> Any:
        if client is None:
            return self
        build, run = self.build, client._run
        method: Callable[..., Any]
        if inspect.iscoroutinefunction(run):

            async def method(*args: Any, **kwargs: Any) -> Any:
                return await run(build(client, *args, **kwargs))

        else:

            def method(*args: Any, **kwargs: Any) -> Any:
                return run(build(client, *args, **kwargs))

        functools.update_wrapper(method, build)
        method.__signature__ = self.signature  # type: ignore[union-attr]  # what inspect.signature reads
        return method


def _raw(body: Any) -> Any:
    return body


def _fields(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Options as body fields: the ones given, tuples as lists (MessagePack and JSON arrays)."""
    fields = {k: v for k, v in opts.items() if v is not None}
    if isinstance(fields.get("max_size"), tuple):
        fields["max_size"] = list(fields["max_size"])
    return fields


def _segment(value: str) -> str:
    """One path segment, percent-encoded: nothing in a name can become path structure (checked
    names need no escaping; the encoding holds should the rule ever allow more)."""
    return quote(value, safe="")


def _collection(name: str) -> str:
    return _segment(check_name("collection", name))


def _subject(name: str) -> str:
    return _segment(check_name("subject", name))


def _face(face_id: str) -> str:
    return _segment(check_id("face", face_id))


def _job(job_id: str) -> str:
    return _segment(check_id("job", job_id))


def _video(video_id: str) -> str:
    return _segment(check_id("video", video_id))


def _form(fields: Mapping[str, Any]) -> dict[str, str]:
    """Options as multipart text fields, as POST /videos reads them: JSON where a field is not
    text (booleans, numbers, max_size's [W, H]), text as it is."""
    return {
        name: value if isinstance(value, str) else json.dumps(value)
        for name, value in _fields(fields).items()
    }


def _renamed(body: Mapping[str, Any]) -> str:
    return str(body["subject"])


def _bytes(body: Any) -> bytes:
    if not isinstance(body, bytes):
        raise TypeError(f"expected an image, got {type(body).__name__}")
    return body


def _collection_job(collection: str, action: str, callback_url: str | None) -> Endpoint[Job]:
    """POST /collections/{c}/{action}: a JSON object with the callback_url, if any; its
    Idempotency-Key makes a retried call one job."""
    headers = {"Content-Type": "application/json", IDEMPOTENCY_HEADER: uuid.uuid4().hex}
    content = json.dumps({} if callback_url is None else {"callback_url": callback_url}).encode()
    call = Call("POST", f"/collections/{_collection(collection)}/{action}", content=content, headers=headers)
    return Endpoint(call, Job.from_wire)


class Endpoints:
    """The methods both clients have. Each builds its request (in the client's wire format) and
    names the parser of the answer; the client sends it (``_run``: retries, then the parser)."""

    def __init__(self, use_msgpack: bool) -> None:
        self._use_msgpack = use_msgpack

    def _run(self, endpoint: Endpoint[T]) -> Any:
        """Send, retry, parse: the answer (FaceRest) or a coroutine of it (AsyncFaceRest)."""
        raise NotImplementedError

    @client_method
    def extract(
        self, images: Sequence[ImageInput] = (), urls: Sequence[str] = (), **opts: Unpack[ExtractOptions]
    ) -> Endpoint[ExtractResult]:
        """Faces of each image (bytes or a path) and URL, waiting for the result."""
        return Endpoint(self._extract(images, urls, opts, run_async=False), ExtractResult.from_wire)

    @client_method
    def submit(
        self, images: Sequence[ImageInput] = (), urls: Sequence[str] = (), **opts: Unpack[ExtractOptions]
    ) -> Endpoint[Job]:
        """Queue an extract job and return at once; ``result(job.id, wait_s=20)`` collects it."""
        return Endpoint(self._extract(images, urls, opts, run_async=True), Job.from_wire)

    def _extract(
        self, images: Sequence[ImageInput], urls: Sequence[str], opts: ExtractOptions, run_async: bool
    ) -> Call:
        fields = _fields(opts)
        # Always the envelope: per-image status, and the recognizer that made the vectors.
        fields["api_ver"] = "2"
        if run_async:
            fields["async"] = True
        return body_call("/extract", fields, images, urls, self._use_msgpack)

    @client_method
    def result(self, job_id: str, wait_s: float = 0) -> Endpoint[Job]:
        """A job's state; ``wait_s``: wait up to that long for it to finish (long poll)."""
        params = {"wait": wait_s} if wait_s else {}
        return Endpoint(Call("GET", f"/results/{_job(job_id)}", params=params), Job.from_wire)

    @client_method
    def draw(self, image: ImageInput, **opts: Unpack[DrawOptions]) -> Endpoint[bytes]:
        """The image as a PNG with its faces drawn on it."""
        fields = _fields(opts)
        # Drawing queues no job a retry could duplicate: no Idempotency-Key needed.
        call = body_call(
            "/draw_detections", fields, [image_bytes(image)], (), self._use_msgpack, idempotent=False
        )
        return Endpoint(call, _bytes)

    @client_method
    def enroll(
        self,
        collection: str,
        subject: str,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        **opts: Unpack[EnrollOptions],
    ) -> Endpoint[Enrollment]:
        """Enroll the largest face of each image for ``subject`` (the collection is made on first use)."""
        path = f"/collections/{_collection(collection)}/subjects/{_subject(subject)}/faces"
        call = body_call(path, _fields(opts), images, urls, self._use_msgpack)
        return Endpoint(call, Enrollment.from_wire)

    @client_method
    def ingest(
        self,
        collection: str,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        photo_ids: Sequence[str] = (),
        **opts: Unpack[RecognitionOptions],
    ) -> Endpoint[Ingestion]:
        """People discovery: store and cluster every face of each image; ``photo_ids`` one per
        image (default: the service's, from the image's hash)."""
        path = f"/collections/{_collection(collection)}/photos"
        fields = {**_fields(opts), **({"photo_ids": list(photo_ids)} if photo_ids else {})}
        call = body_call(path, fields, images, urls, self._use_msgpack)
        return Endpoint(call, Ingestion.from_wire)

    @client_method
    def recognize(
        self,
        collection: str,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        **opts: Unpack[RecognizeOptions],
    ) -> Endpoint[Recognition]:
        """Every face of each image among the collection's subjects (1:N, open set)."""
        path = f"/collections/{_collection(collection)}/recognize"
        call = body_call(path, _fields(opts), images, urls, self._use_msgpack)
        return Endpoint(call, Recognition.from_wire)

    @client_method
    def verify(
        self,
        images: Sequence[ImageInput] = (),
        urls: Sequence[str] = (),
        *,
        collection: str | None = None,
        subject: str | None = None,
        **opts: Unpack[VerifyOptions],
    ) -> Endpoint[Verification]:
        """Two images the same person? Or one image against ``subject`` of ``collection``."""
        if collection is not None:
            check_name("collection", collection)
        if subject is not None:
            check_name("subject", subject)
        fields = _fields(opts) | _fields({"collection": collection, "subject": subject})
        call = body_call("/verify", fields, images, urls, self._use_msgpack)
        return Endpoint(call, Verification.from_wire)

    @client_method
    def reindex(self, collection: str, callback_url: str | None = None) -> Endpoint[Job]:
        """Re-embed the collection's stored crops with the workers' recognizer (a job: ``result``;
        ``callback_url``: a signed webhook when it ends)."""
        return _collection_job(collection, "reindex", callback_url)

    @client_method
    def compact(self, collection: str, callback_url: str | None = None) -> Endpoint[Job]:
        """Erase deleted faces from the gallery's files (a job: ``result`` is ``Compacted``;
        ``callback_url``: a signed webhook when it ends)."""
        return _collection_job(collection, "compact", callback_url)

    @client_method
    def submit_video(
        self, video: ImageInput | None = None, *, url: str | None = None, **opts: Unpack[VideoOptions]
    ) -> Endpoint[VideoSubmitted]:
        """Upload a video file (a path, streamed from disk, or bytes), or have the service fetch
        ``url``; returns at once. ``video(id)`` or ``wait_video(id)`` follow it."""
        if (video is None) == (url is None):
            raise ValueError("submit_video takes a video file or a url, one of them")
        if "collection" in opts:
            check_name("collection", opts["collection"])
        # A retry (503, 429, a lost connection) sends the same key and the same file and fields:
        # the service answers it with the video the first attempt made (docs/video.md).
        headers = {IDEMPOTENCY_HEADER: uuid.uuid4().hex, "Accept": "application/json"}
        if url is not None:
            content = json.dumps({"url": url, **_fields(opts)}).encode()
            call = Call(
                "POST", "/videos", content=content, headers=headers | {"Content-Type": "application/json"}
            )
        else:
            upload = video if isinstance(video, bytes) else Path(cast(str | Path, video))
            call = Call("POST", "/videos", headers=headers, upload=upload, form=_form(opts))
        return Endpoint(call, VideoSubmitted.from_wire)

    @client_method
    def video(self, video_id: str, wait_s: float = 0) -> Endpoint[Video]:
        """A video's state, progress and tracks so far; ``wait_s``: wait up to that long for it
        to finish (long poll)."""
        params = {"wait": wait_s} if wait_s else {}
        return Endpoint(Call("GET", f"/videos/{_video(video_id)}", params=params), Video.from_wire)

    @client_method
    def cancel_video(self, video_id: str) -> Endpoint[None]:
        """Stop analysing a video and erase its upload and results."""
        return Endpoint(Call("DELETE", f"/videos/{_video(video_id)}"), cancelled_from_wire)

    @client_method
    def video_thumbnail(self, thumbnail_url: str) -> Endpoint[bytes]:
        """A track's thumbnail (JPEG), from its ``best.thumbnail_url``."""
        if not thumbnail_url.startswith("/videos/"):
            raise ValueError(f"not a video thumbnail's path: {thumbnail_url!r}")
        return Endpoint(Call("GET", thumbnail_url), _bytes)

    @client_method
    def collections(self) -> Endpoint[tuple[Collection, ...]]:
        return Endpoint(Call("GET", "/collections"), collections_from_wire)

    @client_method
    def subjects(self, collection: str, offset: int = 0, limit: int = 100) -> Endpoint[SubjectPage]:
        params = {"offset": offset, "limit": limit}
        call = Call("GET", f"/collections/{_collection(collection)}/subjects", params=params)
        return Endpoint(call, SubjectPage.from_wire)

    @client_method
    def subject(self, collection: str, subject: str) -> Endpoint[SubjectFaces]:
        call = Call("GET", f"/collections/{_collection(collection)}/subjects/{_subject(subject)}")
        return Endpoint(call, SubjectFaces.from_wire)

    @client_method
    def thumbnail(self, collection: str, face_id: str) -> Endpoint[bytes]:
        """An enrolled face's aligned 112x112 crop, JPEG."""
        call = Call("GET", f"/collections/{_collection(collection)}/faces/{_face(face_id)}/thumbnail")
        return Endpoint(call, _bytes)

    @client_method
    def rename_subject(self, collection: str, subject: str, new_name: str) -> Endpoint[str]:
        """Give a subject another name; the new name (409 subject_exists if taken)."""
        content = json.dumps({"subject": check_name("subject", new_name)}).encode()
        path = f"/collections/{_collection(collection)}/subjects/{_subject(subject)}"
        call = Call("PATCH", path, content=content, headers={"Content-Type": "application/json"})
        return Endpoint(call, _renamed)

    @client_method
    def delete_subject(self, collection: str, subject: str) -> Endpoint[int]:
        call = Call("DELETE", f"/collections/{_collection(collection)}/subjects/{_subject(subject)}")
        return Endpoint(call, deleted_from_wire)

    @client_method
    def delete_face(self, collection: str, face_id: str) -> Endpoint[int]:
        call = Call("DELETE", f"/collections/{_collection(collection)}/faces/{_face(face_id)}")
        return Endpoint(call, deleted_from_wire)

    @client_method
    def delete_collection(self, collection: str) -> Endpoint[int]:
        return Endpoint(Call("DELETE", f"/collections/{_collection(collection)}"), deleted_from_wire)

    @client_method
    def info(self) -> Endpoint[ServerInfo]:
        return Endpoint(Call("GET", "/info"), ServerInfo.from_wire)

    @client_method
    def health(self) -> Endpoint[Any]:
        return Endpoint(Call("GET", "/health"), _raw)

    @client_method
    def ready(self) -> Endpoint[Any]:
        return Endpoint(Call("GET", "/ready"), _raw)
