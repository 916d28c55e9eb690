"""The one settings object: every knob is an environment variable prefixed ``FACEREST_``."""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, StringConstraints, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.recognition import NAME_PATTERN
from shared.redisconn import is_sentinel, parse_sentinel

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ENV_PREFIX = "FACEREST_"
# FACEREST_ variables that are not settings: compose's env-file path, gunicorn_conf's marker, the
# facerest command's API key (client/facerest_client/cli.py; a shell may export it for both).
OTHER_VARIABLES = frozenset({"FACEREST_ENV_FILE", "FACEREST_GUNICORN_METRICS_PREPARED", "FACEREST_API_KEY"})
DEVICE_PATTERN = re.compile(r"^(cpu|cuda:\d+)$")
FLOWER_AUTH_PATTERN = re.compile(r"^[^:,\s]+:[^,\s]+$")
ORIGIN_PATTERN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+/?$")
HOST_PATTERN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")


# Faces per recognizer call by default (docs/performance.md, batch size). On a CPU, ArcFace costs the same per
# face from batch 2 up, while each batch's activations stay resident: batch 32 held 350 MB more
# than batch 8. On a GPU, batch 32 costs half as much per face as batch 8.
CPU_BATCH_MAX_FACES = 8
GPU_BATCH_MAX_FACES = 32


class Backend(StrEnum):
    """The runtime a model runs on; ``auto`` picks the fastest measured for that model and device."""

    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


Profile = Literal["insightface", "permissive"]
# /extract's answer when a request sets no api_ver (api/bodies.py Body.api_ver).
ResponseFormat = Literal["auto", "v1", "envelope"]
# A model's registry key ("scrfd", "arcface", "genderage", ...): the worker's registry
# (worker/inference/registry.py) checks at start that it names a known model of the right kind.
ModelKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$", max_length=32)]


@dataclass(frozen=True, slots=True)
class ModelSelection:
    """The models a worker loads; the first detector serves requests that name none."""

    detectors: tuple[str, ...]
    recognizer: str
    attributes: tuple[str, ...]


# insightface: the InsightFace models (non-commercial research use only) and the CC0 gender/age.
# permissive: only weights whose licenses allow commercial use (MIT, CC0, Apache-2.0).
PROFILES: Mapping[str, ModelSelection] = MappingProxyType(
    {
        "insightface": ModelSelection(("scrfd",), "arcface", ("genderage", "landmarks106")),
        # SFace, not dlib: at ArcFace's false-accept rate it keeps 89 % of true pairs, dlib 39 %
        # (docs/calibration.md), at a sixth of dlib's cost per face.
        "permissive": ModelSelection(("retinaface",), "sface", ("genderage",)),
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


# The most lanes a deployment may have: a worker gathers the messages of the lanes past its own
# up to this one (shared/queue.py gather_stray_lanes).
MAX_QUEUE_LANES = 64


class Settings(BaseSettings):
    """Validated configuration; bad values fail at start with the variable's name."""

    model_config = SettingsConfigDict(env_prefix="FACEREST_", frozen=True, extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    queue: str = "facerest"
    # Stochastic fair queueing: each owner's jobs go to one of this many queues ("lanes", by a
    # hash of the owner), and workers take from the non-empty lanes in turn, so one owner's flood
    # fills its own lane while the others' jobs wait behind at most one of its jobs per turn.
    # 1 is one queue in arrival order. API and workers must agree (shared/queue.py).
    queue_lanes: Annotated[int, Field(gt=0, le=MAX_QUEUE_LANES)] = 8
    key_prefix: str = "facerest"

    # API
    sync_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    result_ttl_s: Annotated[int, Field(gt=0)] = 3600
    # A synchronous job's result once delivered: kept this long for an Idempotency-Key retry only.
    sync_result_ttl_s: Annotated[int, Field(gt=0)] = 60
    max_body_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    max_images: Annotated[int, Field(gt=0)] = 64
    max_image_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    max_image_pixels: Annotated[int, Field(gt=0)] = 40_000_000
    # The detector's canvas at most (a 4K UHD frame): larger images, max_size 0 included, are
    # scaled down to it for detection; faces keep full-size coordinates. Bounds the worker's
    # memory (docs/performance.md, bench/memory.py).
    max_detect_pixels: Annotated[int, Field(ge=1024)] = 3840 * 2160
    max_faces: Annotated[int, Field(gt=0)] = 256
    # The cost of one request (docs/security.md, fairness): faces found across all its images
    # (413 past it; each face costs one recognizer call), and the lowest detection score
    # recognize, enroll and verify accept (422 below it; a score of 0 turns noise into faces).
    max_faces_per_request: Annotated[int, Field(gt=0)] = 512
    min_det_threshold: Annotated[float, Field(ge=0, le=1)] = 0.3
    # Overload: more queued jobs than this and /extract answers 503 with Retry-After at once.
    max_queue_depth: Annotated[int, Field(gt=0)] = 100
    retry_after_s: Annotated[int, Field(gt=0, le=3600)] = 5
    # Each owner's share (an API key; with keys off, a client address): its unfinished jobs, and
    # the images in them, at most (429 past either). Far below max_queue_depth, so one owner's
    # flood leaves room, and little wait, for the others' jobs.
    max_queued_per_key: Annotated[int, Field(gt=0)] = 16
    max_images_in_flight_per_key: Annotated[int, Field(gt=0)] = 128
    # An ingest of more photos than this is split into jobs of this many (shared/split.py), one
    # queue message each, so that several workers (and a worker's threads) take it at once.
    ingest_job_photos: Annotated[int, Field(gt=0)] = 8
    # The answer format of /extract when a request sets no api_ver (docs/compatibility.md):
    # auto: the bare list for 2020-style requests, the envelope for today's InsightFace-REST client
    # (a MessagePack or multipart body, or its fields msgpack/img_req_headers/detect_masks);
    # v1: always the bare list; envelope: always the envelope (api_ver 2).
    response_format: ResponseFormat = "auto"

    # URL input (images.urls): private, loopback, link-local and multicast addresses are refused
    # unless listed here (comma-separated CIDRs or host names).
    url_allow: str = ""
    # Proxies whose X-Forwarded-For is believed (comma-separated CIDRs), for the client address
    # that owns a share of the queue with API keys off (docs/security.md). Empty: the TCP peer's.
    trusted_proxies: str = ""
    url_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    url_max_redirects: Annotated[int, Field(ge=0, le=20)] = 3

    # Webhooks (docs/webhooks.md): a finished job's envelope POSTed to its callback_url, signed
    # with HMAC-SHA256. The secret is the service's: with API keys on each key signs with its own
    # secret derived from it (GET /webhooks/secret tells a key its own), with keys off it signs
    # with this secret itself. Empty: callbacks are refused.
    webhook_secret: SecretStr = SecretStr("")
    # Where jobs without a callback_url of their own (or their key's callback=) report; "" none.
    webhook_url: str = ""
    # The same SSRF rules as image URLs: private, loopback, link-local addresses refused unless
    # listed here (comma-separated CIDRs or host names).
    webhook_allow: str = ""
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    # Retries: the first after webhook_backoff_s, each next one twice as late (at most
    # webhook_backoff_max_s apart), for webhook_retry_for_s after the job finished; then it failed.
    webhook_backoff_s: Annotated[float, Field(gt=0, le=3600)] = 2.0
    webhook_backoff_max_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    webhook_retry_for_s: Annotated[float, Field(gt=0)] = 1800.0

    # API keys (off while both are empty): comma-separated keys, or a file with one key a line.
    api_keys: SecretStr = SecretStr("")
    api_keys_file: Path | None = None

    # Flower's basic auth, user:password (deploy/flower.py refuses to start without it).
    flower_auth: SecretStr = SecretStr("")
    # Where Flower listens on the API's host, for the web page's link to it (0: no Flower, no
    # link). make run and make cluster pass their FLOWER_PORT; compose publishes Flower on 5555.
    flower_port: Annotated[int, Field(ge=0, le=65535)] = 5555
    # The drop-in server for DeepStack / CodeProject.AI and CompreFace clients (api/compat/,
    # docs/integrations.md): the port make run serves it on (0: none; compose publishes it too),
    # and the collection its requests use when the API key names none (keys off, "KEY *").
    compat_port: Annotated[int, Field(ge=0, le=65535)] = 18082
    compat_collection: Annotated[str, Field(pattern=NAME_PATTERN.pattern)] = "default"
    # CORS: browser origins allowed to call the API (comma-separated, "https://app.example");
    # none by default: no Access-Control-* headers, preflights get no allow.
    cors_origins: str = ""

    # Videos (POST /videos, docs/video.md): the upload's bytes, its duration, one frame's
    # pixels and its frames at most (413 past any; checked from the container's header, then
    # again as segments are cut), and the length a segment is cut at (at the next keyframe after
    # it). Every segment's bytes wait in Redis as its job's input until it is analysed, so
    # max_video_bytes also bounds the Redis memory one video takes.
    max_video_bytes: Annotated[int, Field(gt=0)] = 256 * 1024 * 1024
    max_video_duration_s: Annotated[float, Field(gt=0)] = 2 * 3600.0
    max_video_pixels: Annotated[int, Field(gt=0)] = 3840 * 2160
    max_video_frames: Annotated[int, Field(gt=0)] = 300_000
    video_segment_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    # A video URL's download, whole (image URLs have url_timeout_s).
    video_url_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 300.0

    log_format: Literal["json", "text"] = "json"

    # Where the service keeps its files: the embedded gallery (gallery.sqlite3) among them.
    data_dir: Path = Path("var")
    # The recognition gallery (docs/recognition.md): empty = SQLite in data_dir/gallery.sqlite3;
    # sqlite:///path/file.sqlite3, or postgresql://user:pass@host/db (pgvector) shared by machines.
    gallery_url: SecretStr = SecretStr("")

    # Worker
    device: str = "cpu"
    concurrency: Annotated[int, Field(gt=0, le=256)] = 8
    batch_max_images: Annotated[int, Field(gt=0, le=256)] = 8
    # 0: the device's default (CPU_BATCH_MAX_FACES or GPU_BATCH_MAX_FACES).
    batch_max_faces: Annotated[int, Field(ge=0, le=1024)] = 0
    batch_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 2.0
    intra_op_threads: Annotated[int, Field(ge=0)] = 0
    visibility_timeout_s: Annotated[int, Field(gt=0)] = 300
    # A killed worker's jobs are queued again about heartbeat_ttl_s + heartbeat_s after its last
    # beat (6 to 8 s by default); the visibility timeout is only the last resort.
    heartbeat_s: Annotated[float, Field(gt=0)] = 2.0
    detector_backend: Backend = Backend.AUTO
    recognizer_backend: Backend = Backend.AUTO
    # The default of the request option "flip" (mirror-augmented embeddings; docs/accuracy.md).
    flip: bool = False
    # A job delivered more often than this (its worker crashed each time) is failed, not retried.
    max_attempts: Annotated[int, Field(gt=0, le=100)] = 3

    # Models: a profile's set, or explicit lists that replace the profile's (FACEREST_DETECTORS=a,b).
    profile: Profile = "insightface"
    detectors: Annotated[list[ModelKey] | None, NoDecode] = None
    recognizer: ModelKey | None = None
    attributes: Annotated[list[ModelKey] | None, NoDecode] = None

    @field_validator("detectors", "attributes", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        return _comma_list(value)

    @field_validator("detectors")
    @classmethod
    def _check_detectors(cls, value: list[str] | None) -> list[str] | None:
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
        if is_sentinel(value):
            parse_sentinel(value)  # raises ValueError naming what is wrong
        elif not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"redis_url must start with redis://, rediss://, unix:// or redis+sentinel://, got {value!r}"
            )
        return value

    @field_validator("url_allow", "webhook_allow")
    @classmethod
    def _check_url_allow(cls, value: str) -> str:
        for entry in _split(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                if not HOST_PATTERN.match(entry.lower()):
                    raise ValueError(f"{entry!r} is neither a CIDR nor a host name") from None
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_trusted_proxies(cls, value: str) -> str:
        _networks(value)  # raises ValueError naming the entry
        return value

    @cached_property
    def trusted_networks(self) -> tuple[Network, ...]:
        """trusted_proxies parsed once (every queued request reads it)."""
        return _networks(self.trusted_proxies)

    @model_validator(mode="after")
    def _check_webhooks(self) -> Settings:
        # A delivery renders the job's state: once that expired there is nothing left to send.
        # Checked only with webhooks on, so that a short result_ttl_s alone stays valid.
        webhooks_on = bool(self.webhook_secret.get_secret_value())
        if webhooks_on and self.webhook_retry_for_s >= self.result_ttl_s:
            raise ValueError(
                f"FACEREST_WEBHOOK_RETRY_FOR_S ({self.webhook_retry_for_s}) must be below "
                f"FACEREST_RESULT_TTL_S ({self.result_ttl_s}): a job's result is gone after it"
            )
        if self.webhook_url and not self.webhook_secret.get_secret_value():
            raise ValueError("FACEREST_WEBHOOK_URL needs FACEREST_WEBHOOK_SECRET to sign its deliveries")
        return self

    @field_validator("gallery_url")
    @classmethod
    def _check_gallery_url(cls, value: SecretStr) -> SecretStr:
        # The message never repeats the value: a PostgreSQL URL may hold a password.
        text = value.get_secret_value()
        if text and not text.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("gallery_url must be empty, sqlite:///<path> or postgresql://...")
        return value

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _empty_api_keys_file_is_none(cls, value: object) -> object:
        # The env example's `FACEREST_API_KEYS_FILE=` line, uncommented as it stands, means no
        # file (as an empty FACEREST_API_KEYS means no keys), not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_keys_file")
    @classmethod
    def _check_api_keys_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"api_keys_file {str(value)!r} is not a readable file")
        return value

    @field_validator("flower_auth")
    @classmethod
    def _check_flower_auth(cls, value: SecretStr) -> SecretStr:
        # Flower splits its --basic-auth list on commas; the message never repeats the value.
        text = value.get_secret_value()
        if text and not FLOWER_AUTH_PATTERN.match(text):
            raise ValueError("flower_auth must be user:password: neither empty, no ',', no ':' in user")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        for entry in _split(value):
            if not ORIGIN_PATTERN.match(entry):
                raise ValueError(f"cors_origins: {entry!r} is not an origin like https://app.example:8443")
        return value

    @property
    def cors_origin_list(self) -> tuple[str, ...]:
        return tuple(entry.rstrip("/") for entry in _split(self.cors_origins))

    @property
    def url_allow_list(self) -> tuple[str, ...]:
        return tuple(_split(self.url_allow))

    @property
    def webhook_allow_list(self) -> tuple[str, ...]:
        return tuple(_split(self.webhook_allow))

    def load_api_keys(self) -> tuple[str, ...]:
        """Keys from api_keys and api_keys_file (blank lines and ``#`` comments skipped)."""
        keys = _split(self.api_keys.get_secret_value())
        if self.api_keys_file is not None:
            try:
                lines = self.api_keys_file.read_text().splitlines()
            except OSError as exc:
                raise SettingsError(f"FACEREST_API_KEYS_FILE: cannot read: {exc}") from exc
            keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            if not keys:
                raise SettingsError("FACEREST_API_KEYS_FILE: the file holds no key")
        return tuple(keys)

    @property
    def replicated(self) -> bool:
        """Redis runs with Sentinel and replicas: writes that must survive a failover wait for one."""
        return is_sentinel(self.redis_url)

    def recognizer_batch(self, on_gpu: bool) -> int:
        """Faces per recognizer call on a CPU or a GPU: batch_max_faces, or the device's default."""
        return self.batch_max_faces or (GPU_BATCH_MAX_FACES if on_gpu else CPU_BATCH_MAX_FACES)

    @property
    def heartbeat_ttl_s(self) -> int:
        """A worker missing three heartbeats is considered gone."""
        return max(1, round(self.heartbeat_s * 3))


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _networks(value: str) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in _split(value))
    except ValueError as exc:
        raise ValueError(f"trusted_proxies: {exc}") from None


def load_settings(**overrides: object) -> Settings:
    """Read the environment; turn validation failures into one readable message."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"invalid settings: {describe_problems(exc)}") from exc


def describe_problems(exc: ValidationError) -> str:
    """One line naming each bad variable (``FACEREST_<NAME>``) and what is wrong with it."""
    # A check across settings (a model validator) has no one variable: its message names them.
    return "; ".join(
        f"FACEREST_{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
        if err["loc"]
        else str(err["msg"]).removeprefix("Value error, ")
        for err in exc.errors()
    )


def unknown_settings(environ: Mapping[str, str]) -> list[str]:
    """A line for each ``FACEREST_*`` variable that names no setting, with the closest known name.

    pydantic-settings ignores unknown variables (a typo would silently keep the default).
    """
    known = sorted(name.upper() for name in Settings.model_fields)
    lines = []
    for variable in sorted(environ):
        name = variable.upper()
        if not name.startswith(ENV_PREFIX) or name in OTHER_VARIABLES:
            continue
        suffix = name.removeprefix(ENV_PREFIX)
        if suffix in known:
            continue
        # Compared without the common prefix, which would make every name look alike.
        close = difflib.get_close_matches(suffix, known, n=1, cutoff=0.5)
        hint = f"did you mean {ENV_PREFIX}{close[0]}?" if close else "no setting has a similar name"
        lines.append(f"unknown setting {variable} (ignored); {hint}")
    return lines


def warn_unknown_settings(log: logging.Logger, environ: Mapping[str, str]) -> None:
    """Log each unknown ``FACEREST_*`` variable as a warning, at start (not fatal)."""
    for line in unknown_settings(environ):
        log.warning("%s", line)
