"""The one settings object: every knob is an environment variable prefixed ``FACEREST_``."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVICE_PATTERN = re.compile(r"^(cpu|cuda:\d+)$")


class Backend(StrEnum):
    """The runtime a model runs on; ``auto`` picks the fastest measured for that model and device."""

    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class SettingsError(RuntimeError):
    """Raised at start-up when an environment variable holds a bad value."""


class Settings(BaseSettings):
    """Validated configuration; bad values fail at start with the variable's name."""

    model_config = SettingsConfigDict(env_prefix="FACEREST_", frozen=True, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "facerest"
    key_prefix: str = "facerest"

    # API
    sync_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    result_ttl_s: Annotated[int, Field(gt=0)] = 3600
    max_body_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    max_images: Annotated[int, Field(gt=0)] = 64
    max_image_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    max_image_pixels: Annotated[int, Field(gt=0)] = 40_000_000
    max_faces: Annotated[int, Field(gt=0)] = 256

    # Worker
    device: str = "cpu"
    concurrency: Annotated[int, Field(gt=0, le=256)] = 8
    batch_max_images: Annotated[int, Field(gt=0, le=256)] = 8
    batch_max_faces: Annotated[int, Field(gt=0, le=1024)] = 32
    batch_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    intra_op_threads: Annotated[int, Field(ge=0)] = 0
    visibility_timeout_s: Annotated[int, Field(gt=0)] = 300
    heartbeat_s: Annotated[float, Field(gt=0)] = 5.0
    detector_backend: Backend = Backend.AUTO
    recognizer_backend: Backend = Backend.AUTO

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.match(value):
            raise ValueError(f"device must be 'cpu' or 'cuda:N', got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"redis_url must start with redis://, rediss:// or unix://, got {value!r}")
        return value

    @property
    def heartbeat_ttl_s(self) -> int:
        """A worker missing three heartbeats is considered gone."""
        return max(1, round(self.heartbeat_s * 3))


def load_settings(**overrides: object) -> Settings:
    """Read the environment; turn validation failures into one readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"FACEREST_{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings: {problems}") from exc
