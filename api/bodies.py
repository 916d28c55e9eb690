"""Request bodies that carry images, read in one place for every endpoint that takes them.

Three wire forms give one typed request (a subclass of ``api.schemas.ImagesBody``):

- ``application/json``: images as base64 strings (``images.data``) or URLs (``images.urls``).
- ``application/msgpack`` (or ``application/x-msgpack``): the same map in MessagePack; an image
  may be the file's raw bytes (a MessagePack bin), as InsightFace-REST's current client sends it,
  or a base64 string.
- ``multipart/form-data``: each ``file`` field is one image file (in order), each ``urls`` field
  one URL, each ``photo_id`` field one item of ``photo_ids`` (in order), and every other field an
  option as text (``threshold=0.5``, ``return_landmarks=106``, ``max_size=640,480``,
  ``img_req_headers={"Cookie": "a=b"}``; empty or ``null``: the default),
  so that ``curl -F file=@a.jpg`` and Swagger UI's form, as it comes, work.

A route calls ``read_body(Model)`` and then ``read_images(ctx, body.request)``: the first
validates (pydantic's ValidationError becomes a 422 at the edge), the second decodes base64,
fetches URLs and checks every image's header, keeping each refused image's error by its
position in the request.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, Literal, TypeVar

import msgpack
import orjson
from flask import request
from werkzeug.datastructures import FileStorage, ImmutableMultiDict, MultiDict
from werkzeug.exceptions import UnsupportedMediaType

from api.context import ApiContext
from api.schemas import ImagesBody
from shared.contract import ErrorInfo
from shared.errors import FaceRestError, InvalidRequest, LimitExceeded
from shared.images import decode_base64, probe
from shared.settings import ResponseFormat

Wire = Literal["json", "msgpack", "multipart"]
RequestT = TypeVar("RequestT", bound=ImagesBody)

MSGPACK_TYPES = frozenset({"application/msgpack", "application/x-msgpack"})
FILE_FIELD = "file"
URL_FIELD = "urls"
# Form fields that repeat, one part per item, in order, and the list field they make: one
# ``photo_id`` part per file (the contract for POST /collections/{c}/photos).
FORM_ITEM_FIELDS = {"photo_id": "photo_ids"}
# Form fields whose text is JSON (a map has no other plain-text form).
FORM_JSON_FIELDS = frozenset({"img_req_headers"})
FORM_NULLS = frozenset({"", "null"})
URL_FETCH_THREADS = 8  # URLs of one request fetched at once
# Fields only InsightFace-REST's current client sends (with no api_ver): its requests get the
# envelope under FACEREST_RESPONSE_FORMAT=auto.
NEW_CLIENT_FIELDS = frozenset({"msgpack", "img_req_headers", "detect_masks"})
MAX_UNKNOWN_FIELDS = 10
MAX_FIELD_NAME = 64

log = logging.getLogger("facerest.api")


@dataclass(frozen=True, slots=True)
class Body(Generic[RequestT]):
    """A validated request, the wire form it came in, and a digest of its bytes (Idempotency-Key)."""

    request: RequestT
    wire: Wire
    digest: str
    # Top-level fields the model does not know, ignored (only models that ignore extras have
    # them: /extract's and /draw_detections' InsightFace-REST clients send extra fields).
    unknown: tuple[str, ...] = ()

    def api_ver(self, response_format: ResponseFormat) -> Literal["1", "2"]:
        """The answer format: an explicit ``api_ver`` wins; else the deployment's setting
        (``v1``, ``envelope``) or, with ``auto``, the request's generation: a MessagePack or
        multipart body, or a field only the current InsightFace-REST client sends, gets the
        envelope; a 2020-style JSON request gets the bare list (docs/compatibility.md)."""
        if self.request.api_ver is not None:
            return self.request.api_ver
        if response_format == "v1":
            return "1"
        if response_format == "envelope":
            return "2"
        new_client = self.wire != "json" or bool(NEW_CLIENT_FIELDS & self.request.model_fields_set)
        return "2" if new_client else "1"


@dataclass(frozen=True, slots=True)
class ReadImages:
    """The images the API accepted, in request order, and the refused ones' errors by position."""

    accepted: list[bytes]
    errors: dict[int, ErrorInfo]


def wire_of(media_type: str) -> Wire:
    """The wire form of a body by its media type (api/hygiene.py has already refused others)."""
    if media_type in MSGPACK_TYPES:
        return "msgpack"
    if media_type == "multipart/form-data":
        return "multipart"
    return "json"


def read_body(model: type[RequestT]) -> Body[RequestT]:
    """The current request's body, in any of the three wire forms, validated as ``model``."""
    # Cached: for multipart, werkzeug parses the form from these same bytes.
    raw = request.get_data(cache=True)
    wire = wire_of(request.mimetype)
    fields = form_fields(request.form, request.files) if wire == "multipart" else parse(raw, wire)
    validated = model.model_validate(fields)
    unknown = unknown_fields(model, fields)
    if unknown:
        log.warning("%s: unknown fields ignored: %s", request.path, ", ".join(unknown))
    return Body(validated, wire, hashlib.sha256(raw).hexdigest(), unknown)


def unknown_fields(model: type[ImagesBody], fields: Any) -> tuple[str, ...]:
    """The top-level names in ``fields`` that ``model`` has no field for (at most
    MAX_UNKNOWN_FIELDS, ASCII-escaped and cut short: they go into logs and a header)."""
    if not isinstance(fields, dict):
        return ()
    known = set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}
    names = sorted(str(name) for name in fields if name not in known)
    return tuple(ascii(name)[1:-1][:MAX_FIELD_NAME] for name in names[:MAX_UNKNOWN_FIELDS])


def parse(raw: bytes, wire: Wire) -> Any:
    """A JSON or MessagePack body as Python values (MessagePack bin: bytes)."""
    if wire == "multipart":
        # Only bodies that carry images are read from forms (read_body); the others are one map.
        raise UnsupportedMediaType(
            "this endpoint takes a JSON or MessagePack body (application/json, application/msgpack), "
            "not multipart/form-data"
        )
    if wire == "msgpack":
        if not raw:
            raise InvalidRequest("body is not valid MessagePack: the body is empty")
        try:
            # raw=False: MessagePack str -> str, bin -> bytes; map keys must be str or bytes.
            return msgpack.unpackb(raw, raw=False, strict_map_key=True)
        except (ValueError, msgpack.UnpackException) as exc:
            raise InvalidRequest(f"body is not valid MessagePack: {msgpack_problem(exc)}") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"body is not valid JSON: {json_problem(exc)}") from None


def json_problem(exc: orjson.JSONDecodeError) -> str:
    """What is wrong with a JSON text, in our words (orjson's say "surrogates not allowed" for
    any bytes that are not UTF-8)."""
    if exc.msg.startswith("str is not valid UTF-8"):
        return "the text is not UTF-8"
    if not exc.doc:
        return "the body is empty"
    if exc.msg.startswith("recursion limit") or exc.msg.startswith("depth limit"):
        return "nested too deep"
    if exc.msg.startswith("unexpected end of data") or exc.pos >= len(exc.doc):
        return "it ends before the value is complete"
    where = f"line {exc.lineno}, column {exc.colno}"
    if exc.msg.startswith("unexpected content after document"):
        return f"more follows the value, at {where}"
    return f"syntax error at {where}"


def msgpack_problem(exc: Exception) -> str:
    """What is wrong with a MessagePack body, in our words (msgpack's name its internal limits:
    "exceeds max_array_len(5)" is a declared length longer than the whole body)."""
    if isinstance(exc, msgpack.ExtraData):
        return "bytes follow the first value"
    if isinstance(exc, msgpack.StackError):
        return "nested too deep"
    if isinstance(exc, msgpack.FormatError):
        return "a byte that starts no MessagePack value"
    if isinstance(exc, UnicodeDecodeError):
        return "a string is not UTF-8"
    if "map key" in str(exc):
        return "a map key is not a string"
    if isinstance(exc, msgpack.OutOfData) or "exceeds max_" in str(exc) or "incomplete" in str(exc):
        return "it ends before the values it declares are complete"
    return "it cannot be read"


def form_fields(
    form: ImmutableMultiDict[str, str], files: ImmutableMultiDict[str, FileStorage]
) -> dict[str, Any]:
    """A multipart form as the request map: ``file`` fields are images.data, ``urls`` fields
    images.urls, the others as ``option_fields`` reads them."""
    fields = option_fields(form, skip=(URL_FIELD,))
    fields["images"] = {
        "data": [upload.read() for upload in files.getlist(FILE_FIELD)],
        "urls": [url for url in form.getlist(URL_FIELD) if url],
    }
    if not fields["images"]["data"] and not fields["images"]["urls"]:
        raise InvalidRequest(_no_image(form, files))
    return fields


def option_fields(form: MultiDict[str, str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A multipart form's option fields as a request map: ``max_size`` may be ``W,H`` or
    ``[W, H]``; the JSON fields are parsed; other fields stay text for pydantic's conversions
    (a collection named 2024 stays a name)."""
    fields: dict[str, Any] = {}
    for name, value in form.items(multi=False):
        # An empty field, or the text null (what Swagger UI's Try it out sends for an option
        # whose default is null), means the option's default, as null does in JSON.
        if name in skip or value in FORM_NULLS:
            continue
        if name in FORM_ITEM_FIELDS:
            fields[FORM_ITEM_FIELDS[name]] = form.getlist(name)
            continue
        if name in FORM_JSON_FIELDS:
            try:
                fields[name] = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise InvalidRequest(f"form field {name}: not a JSON object: {json_problem(exc)}") from None
        elif name == "max_size" and "," in value:
            fields[name] = [part.strip() for part in value.strip("[]").split(",")]
        else:
            fields[name] = value
    return fields


def _no_image(form: ImmutableMultiDict[str, str], files: ImmutableMultiDict[str, FileStorage]) -> str:
    """Why a form carries no image, naming what it sent instead (a field name, curl's missing @)."""
    expected = (
        f"each image is a file upload in a form field named {FILE_FIELD!r} (curl -F {FILE_FIELD}=@photo.jpg)"
    )
    if FILE_FIELD in form:
        return (
            f"no image: form field {FILE_FIELD!r} holds text ({form[FILE_FIELD][:60]!r}), not a file "
            f"upload; curl needs @ before the path: -F {FILE_FIELD}=@photo.jpg"
        )
    if files:
        names = ", ".join(repr(name) for name in dict.fromkeys(files.keys()))
        return f"no image: the file(s) came in form field(s) {names}; {expected}"
    return f"no image: {expected}, or image URLs in {URL_FIELD!r} fields"


def read_images(ctx: ApiContext, body: ImagesBody) -> ReadImages:
    """Decode base64, take raw bytes, fetch URLs (with ``img_req_headers``) and check each header.

    One bad image never fails the others here: its error is kept by its request position
    (images.data first, then images.urls) for the route's answer rule (api/render.py).
    """
    settings = ctx.settings
    images: list[bytes] = []
    errors: dict[int, ErrorInfo] = {}

    def read(index: int, where: str, data: Callable[[], bytes]) -> None:
        try:
            images.append(data())
        except FaceRestError as exc:
            errors[index] = ErrorInfo(exc.code, f"{where}: {exc.message}")

    def from_body(item: str | bytes) -> bytes:
        if isinstance(item, str):
            data = decode_base64(item, settings.max_image_bytes)
        elif len(item) > settings.max_image_bytes:
            raise LimitExceeded(f"{len(item)} bytes, more than max_image_bytes={settings.max_image_bytes}")
        else:
            data = item
        probe(data, settings.max_image_pixels)
        return data

    def fetch(url: str) -> bytes:
        data = ctx.fetcher.fetch(url, body.img_req_headers)
        probe(data, settings.max_image_pixels)
        return data

    data_items = body.images.data
    for index, item in enumerate(data_items):
        read(index, f"images.data[{index}]", partial(from_body, item))
    urls = body.images.urls
    if urls:
        with ThreadPoolExecutor(min(URL_FETCH_THREADS, len(urls))) as pool:
            futures = [pool.submit(fetch, url) for url in urls]
            for offset, (url, future) in enumerate(zip(urls, futures, strict=True)):
                read(len(data_items) + offset, f"images.urls[{offset}] {url!r}", future.result)
    return ReadImages(images, errors)
