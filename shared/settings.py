"""The one settings object: every knob is an environment variable prefixed ``FACEREST_``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.schemas import AttributeName, DetectorName, RecognizerName

DEVICE_PATTERN = re.compile(r"^(cpu|cuda:\d+)$")

Profile = Literal["insightface", "permissive"]


@dataclass(frozen=True, slots=True)
class ModelSelection:
    """The models a worker loads; the first detector serves requests that name none."""

    detectors: tuple[DetectorName, ...]
    recognizer: RecognizerName
    attributes: tuple[AttributeName, ...]


# insightface: the InsightFace models (non-commercial research use only) and the CC0 gender/age.
# permissive: only weights whose licenses allow commercial use (MIT, CC0).
PROFILES: Mapping[str, ModelSelection] = MappingProxyType(
    {
        "insightface": ModelSelection(("scrfd",), "arcface", ("genderage", "landmarks106")),
        "permissive": ModelSelection(("retinaface",), "dlib", ("genderage",)),
    }
)


def _comma_list(value: Any) -> Any:
    """``FACEREST_DETECTORS=scrfd,retinaface`` (or a JSON list) -> a list of names."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return [part.strip().strip("\"'") for part in text.strip("[]").split(",") if part.strip()]
        return [part.strip() for part in text.split(",") if part.strip()]
    return value


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
    concurrency: Annotated[int, Field(gt=0, le=256)] = 4
    intra_op_threads: Annotated[int, Field(ge=0)] = 0
    visibility_timeout_s: Annotated[int, Field(gt=0)] = 300
    heartbeat_s: Annotated[float, Field(gt=0)] = 5.0
    det_max_size: Annotated[int, Field(ge=0)] = 640

    # Models: a profile's set, or explicit lists that replace the profile's (FACEREST_DETECTORS=a,b).
    profile: Profile = "insightface"
    detectors: Annotated[list[DetectorName] | None, NoDecode] = None
    recognizer: RecognizerName | None = None
    attributes: Annotated[list[AttributeName] | None, NoDecode] = None

    @field_validator("detectors", "attributes", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("detectors")
    @classmethod
    def _check_detectors(cls, value: list[DetectorName] | None) -> list[DetectorName] | None:
        if value is not None:
            if not value:
                raise ValueError("name at least one detector")
            if len(set(value)) != len(value):
                raise ValueError(f"a detector is named twice in {value}")
        return value

    def models(self) -> ModelSelection:
        """The profile's models, with any explicit list in its place."""
        base = PROFILES[self.profile]
        return ModelSelection(
            detectors=tuple(self.detectors) if self.detectors is not None else base.detectors,
            recognizer=self.recognizer or base.recognizer,
            attributes=tuple(dict.fromkeys(self.attributes))
            if self.attributes is not None
            else base.attributes,
        )

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
