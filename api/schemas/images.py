"""What every request that carries images has (api/bodies.py reads it from JSON, MessagePack or
multipart): the images, how to fetch their URLs, the detector's options, and queueing."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from shared.contract import DEFAULT_MAX_SIZE, DEFAULT_THRESHOLD, AnalysisOptions

# An image as the body carries it: a base64 string (JSON, or MessagePack from a client that
# encodes anyway) or the file's raw bytes (MessagePack bin, multipart file). The schema documents
# the JSON form; api/bodies.py explains the others.
ImageData = Annotated[
    str | bytes,
    WithJsonSchema({"type": "string", "description": "base64 image file (raw bytes in MessagePack)"}),
]


# The headers an image request may not set: the fetcher sets them itself (Host, Accept-Encoding:
# identity keeps compressed bombs out) or they belong to the connection, not the request.
FORBIDDEN_FETCH_HEADERS = frozenset(
    {
        "host",
        "accept-encoding",
        "content-length",
        "transfer-encoding",
        "connection",
        "te",
        "upgrade",
        "keep-alive",
        "trailer",
        "expect",
    }
)


HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")


MAX_FETCH_HEADERS = 32


MAX_FETCH_HEADER_BYTES = 8192


class Images(BaseModel):
    """Images as base64 strings (plain or ``data:`` URLs) or raw bytes, and/or http(s) URLs."""

    model_config = ConfigDict(extra="forbid")

    data: list[ImageData] = Field(
        default_factory=list,
        description="Base64-encoded image files (raw bytes in a MessagePack body; multipart: file fields).",
    )
    urls: list[str] = Field(
        default_factory=list,
        description="http(s) URLs of image files, answered after the images in data. Private, "
        "loopback, link-local and multicast addresses are refused unless allowed by FACEREST_URL_ALLOW.",
    )

    @property
    def count(self) -> int:
        return len(self.data) + len(self.urls)


# The largest count or side in pixels a request may name: far beyond any image max_image_pixels
# lets in, and small enough for the job contract's integers (msgspec refuses ints past 64 bits).
INT32_MAX = 2**31 - 1


def check_max_size(value: list[int] | int) -> list[int] | int:
    sizes = [value, value] if isinstance(value, int) else value
    if len(sizes) != 2 or any(not 0 <= s <= INT32_MAX for s in sizes):
        raise ValueError(f"max_size must be [width, height] of integers from 0 to {INT32_MAX}, or 0")
    if 0 in sizes and sizes != [0, 0]:
        raise ValueError("max_size: use 0 or [0, 0] to disable resizing")
    if any(0 < s < 32 for s in sizes):
        raise ValueError("max_size: each side must be 0 or at least 32")
    return value


def max_size_pair(value: list[int] | int) -> tuple[int, int]:
    sizes = [value, value] if isinstance(value, int) else value
    return sizes[0], sizes[1]


class ImagesBody(BaseModel):
    """What every request that carries images has: the images, and how to fetch their URLs.

    api/bodies.py reads it from JSON, MessagePack or multipart; routes subclass it with their
    own options (ExtractRequest, DrawRequest, and the recognition requests).
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    images: Images
    # A default of {} in the schema (default_factory would leave it out): Swagger UI's form and
    # example then send {} instead of its placeholder headers ("additionalProp1").
    img_req_headers: dict[str, str] = Field(
        default={},
        description="Headers sent with each images.urls request (e.g. Authorization, Cookie, "
        "User-Agent), to the URL's own host only: dropped on a redirect to another host. Host, "
        "Accept-Encoding and connection headers are refused.",
    )
    detect_masks: bool = Field(
        False,
        description="Not supported (no mask model ships under a usable license): true answers "
        "mask_probs null and a warning (docs/compatibility.md).",
    )
    api_ver: Literal["1", "2"] | None = Field(
        None,
        description='"1": the bare list; "2": the envelope. Unset: FACEREST_RESPONSE_FORMAT decides '
        "(auto: the envelope for a MessagePack or multipart body or one with msgpack, img_req_headers "
        "or detect_masks, else the list; docs/compatibility.md).",
    )
    msgpack: bool = Field(False, description="Answer in MessagePack (as Accept: application/x-msgpack does).")

    @model_validator(mode="before")
    @classmethod
    def _null_is_the_default(cls, value: Any) -> Any:
        """``null`` for an option means its default, as in InsightFace-REST's schema (all its
        options are Optional): its asyncio client sends ``"img_req_headers": null``."""
        if isinstance(value, dict):
            return {key: item for key, item in value.items() if item is not None}
        return value

    @field_validator("api_ver", mode="before")
    @classmethod
    def _api_ver_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_validator("img_req_headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_FETCH_HEADERS:
            raise ValueError(f"at most {MAX_FETCH_HEADERS} headers")
        if sum(len(k) + len(v) for k, v in value.items()) > MAX_FETCH_HEADER_BYTES:
            raise ValueError(f"at most {MAX_FETCH_HEADER_BYTES} bytes of headers")
        for name, text in value.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name!r} is not a valid header name")
            if name.lower() in FORBIDDEN_FETCH_HEADERS or name.lower().startswith("proxy-"):
                raise ValueError(f"header {name!r} is set by the fetcher and cannot be sent")
            if any(c in text for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: line breaks and NUL are not allowed")
        return value


# The detection score a face must reach to be found: /extract's and /draw_detections' threshold
# (InsightFace-REST's name), det_threshold where threshold is a similarity (recognition).
DETECTION_SCORE = "Detection score (0-1) a face must reach to be found"


QUALITY_DESCRIPTION = (
    "Each face's quality: sharpness of the aligned crop, yaw/pitch/roll from the keypoints, size, "
    "and the combined quality in [0, 1] (docs/recognition.md#face-quality)."
)


class DetectorBody(ImagesBody):
    """What every request that finds faces has: which detector, and how large an image it sees.
    DetectionRequest (/extract, /draw_detections) and RecognitionRequest add their thresholds."""

    max_size: list[int] | int = Field(
        default=list(DEFAULT_MAX_SIZE),
        description="[width, height] an image is scaled down to (never up) before detection, "
        "proportions kept; 0 or [0, 0] means no resizing. Either way the detector's canvas holds "
        "at most FACEREST_MAX_DETECT_PIXELS (/info: max_detect_pixels; default 3840x2160): a larger "
        "image is scaled down to that many pixels. Boxes are always in original-image pixels.",
    )
    detector: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=32,
        description="Detector to use (scrfd, retinaface, mtcnn: /info lists the loaded ones); "
        "the worker's first configured detector when omitted.",
    )

    @field_validator("max_size")
    @classmethod
    def _check_max_size(cls, value: list[int] | int) -> list[int] | int:
        return check_max_size(value)

    def detection(self, threshold: float, limit_faces: int, min_face_size: int = 0) -> AnalysisOptions:
        """The detection part of a job's options; each endpoint adds what it asks for."""
        return AnalysisOptions(
            max_size=max_size_pair(self.max_size),
            threshold=threshold,
            limit_faces=limit_faces,
            min_face_size=min_face_size,
            detector=self.detector,
        )


class DetectionRequest(DetectorBody):
    """The detection options of the endpoints that return faces as found (/extract,
    /draw_detections), in InsightFace-REST's names."""

    threshold: Annotated[
        float,
        Field(
            ge=0.0,
            le=1.0,
            description=f"{DETECTION_SCORE} (/info: defaults.det_thresh). Not a similarity: "
            "recognize and verify call this det_threshold, and their threshold is a similarity.",
        ),
    ] = DEFAULT_THRESHOLD
    limit_faces: Annotated[
        int, Field(ge=0, le=INT32_MAX, description="Keep the N largest faces; 0 = all.")
    ] = 0
    min_face_size: Annotated[int, Field(ge=0, le=INT32_MAX, description="Drop faces narrower (px).")] = 0

    def options(self, max_faces: int) -> AnalysisOptions:
        return self.detection(
            self.threshold, min(self.limit_faces or max_faces, max_faces), self.min_face_size
        )


CALLBACK_URL_MAX = 2048
CALLBACK_URL = Annotated[str | None, Field(max_length=CALLBACK_URL_MAX)]


class CollectionJobRequest(BaseModel):
    """The optional body of a job on a whole collection (reindex, compact)."""

    model_config = ConfigDict(extra="forbid")

    callback_url: CALLBACK_URL = None


class QueuedBody(ImagesBody):
    """A request that queues a job (api/submit.py): answered when done, or 202 at once."""

    run_async: bool = Field(False, alias="async", description="Return 202 with a job id.")
    callback_url: CALLBACK_URL = Field(
        None,
        description="When the job ends (done or failed), POST its /results envelope here, signed "
        "(docs/webhooks.md); without it, the API key's default (callback= in its entry) or "
        "FACEREST_WEBHOOK_URL. The same address rules as image URLs (FACEREST_WEBHOOK_ALLOW).",
    )
