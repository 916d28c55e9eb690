"""Render worker results in the requested API version and encoding (JSON or MessagePack)."""

from __future__ import annotations

import base64
from typing import Any, cast

import msgpack
import numpy as np
import orjson
from flask import Request, Response

from shared.errors import InvalidImage
from shared.schemas import FaceRecord, ImageRecord, JobResult

MSGPACK = "application/x-msgpack"


def wants_msgpack(request: Request, flag: bool = False) -> bool:
    return flag or request.accept_mimetypes.best_match(["application/json", MSGPACK]) == MSGPACK


def _vector(face: FaceRecord) -> np.ndarray[Any, np.dtype[np.float32]] | None:
    return np.frombuffer(face["vec"], dtype=np.float32) if "vec" in face else None


def _face_v1(face: FaceRecord, index: int, landmarks: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "vec": _vector(face),
        "det": index,
        "prob": face["prob"],
        "bbox": [round(v) for v in face["bbox"]],
    }
    if landmarks:
        out["landmarks"] = [[round(x), round(y)] for x, y in face["landmarks"]]
    if "facedata" in face:
        out["facedata"] = base64.b64encode(face["facedata"]).decode()
    _attributes(face, out)
    return out


def _attributes(face: FaceRecord, out: dict[str, Any]) -> None:
    """Gender, age and dense landmarks, where the request asked for them."""
    for key in ("gender", "gender_score", "age", "landmarks106"):
        if key in face:
            out[key] = face[key]


def image_label(index: int, data_count: int | None) -> str:
    """Where image ``index`` of a job came from: images.data first, then images.urls."""
    if data_count is None or index < data_count:
        return f"images.data[{index}]"
    return f"images.urls[{index - data_count}]"


def render_v1(
    result: JobResult, landmarks: bool, data_count: int | None = None
) -> list[list[dict[str, Any]]]:
    """The original InsightFace-REST format: one list of faces per image, in request order."""
    rendered = []
    for index, image in enumerate(result["images"]):
        if image["status"] != "ok":
            error = image.get("error", {"code": "invalid_image", "message": "failed"})
            raise InvalidImage(f"{image_label(index, data_count)}: {error['message']}")
        faces = image.get("faces", [])
        rendered.append([_face_v1(face, i, landmarks) for i, face in enumerate(faces)])
    return rendered


def _face_v2(face: FaceRecord, landmarks: bool) -> dict[str, Any]:
    x1, y1, x2, y2 = face["bbox"]
    out: dict[str, Any] = {
        "bbox": face["bbox"],
        "prob": face["prob"],
        "size": [round(x2 - x1, 2), round(y2 - y1, 2)],
    }
    if landmarks:
        out["landmarks"] = face["landmarks"]
    if "vec" in face:
        out["vec"] = _vector(face)
        out["norm"] = face.get("norm")
    if "facedata" in face:
        out["facedata"] = base64.b64encode(face["facedata"]).decode()
    _attributes(face, out)
    return out


def _image_v2(image: ImageRecord, landmarks: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"status": image["status"], "took_ms": image["took_ms"]}
    if image["status"] != "ok":
        out["error"] = image.get("error")
        return out
    out["size"] = image.get("size")
    out["faces"] = [_face_v2(face, landmarks) for face in image.get("faces", [])]
    if "timings" in image:
        out["timings"] = image["timings"]
    return out


def render_v2(result: JobResult, landmarks: bool, total_ms: float) -> dict[str, Any]:
    return {
        "took": {"total_ms": round(total_ms, 3), "worker_ms": result["took_ms"]},
        "worker": result["worker"],
        # Vectors of different recognizers are never comparable: say which one made these.
        "recognizer": result.get("recognizer"),
        "detector": result.get("detector"),
        "data": [_image_v2(image, landmarks) for image in result["images"]],
    }


def render(
    result: JobResult, api_ver: str, landmarks: bool, total_ms: float, data_count: int | None = None
) -> Any:
    if api_ver == "2":
        return render_v2(result, landmarks, total_ms)
    return render_v1(result, landmarks, data_count)


def _msgpack_default(value: object) -> object:
    if isinstance(value, np.ndarray):
        return cast(list[float], value.tolist())
    raise TypeError(f"cannot serialise {type(value).__name__}")


def encode(body: Any, msgpack_wanted: bool, status: int = 200) -> Response:
    if msgpack_wanted:
        packed = msgpack.packb(body, default=_msgpack_default, use_bin_type=True)
        return Response(packed, status=status, mimetype=MSGPACK)
    dumped = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(dumped, status=status, mimetype="application/json")
