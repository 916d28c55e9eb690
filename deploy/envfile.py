"""docker/facerest.env.example, generated from the settings model so that it cannot drift.

``python -m deploy.envfile > docker/facerest.env.example``. Every commented line shows the default
of shared/settings.py; the notes are kept here, next to the section each setting belongs to.
tests/unit/test_deploy.py checks that the committed file is what this renders, and that every
setting is either listed or named as set by compose or the images.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from pydantic import SecretStr

from shared.settings import PROFILES, Settings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docker" / "facerest.env.example"

HEADER = """\
# facerest settings for Docker: every container that runs facerest (API replicas, workers) and
# Flower reads this file through compose's env_file. deploy.sh copies it to facerest.env (or to
# $FACEREST_ENV_FILE) on the first deploy, with a generated Flower password and API key, and never
# overwrites it afterwards; edit that copy and run ./deploy.sh again. deploy.sh also renders
# HAProxy's config from the same file, so its body limit and server timeout follow
# FACEREST_MAX_BODY_BYTES and FACEREST_SYNC_TIMEOUT_S.
#
# Format: KEY=VALUE, one a line, no quotes needed, `#` starts a comment line. A commented line
# shows the default. Each setting is described in README.md (Configuration).
# Generated from shared/settings.py by `python -m deploy.envfile`: edit deploy/envfile.py, not
# this file.
#
# Set by compose or the images, whatever this file says (they depend on the container):
#   FACEREST_REDIS_URL (redis://redis:6379/0, compose's own Redis), FACEREST_DEVICE (cpu, or
#   cuda:0 in a GPU container, which sees its one GPU as device 0), FACEREST_CONCURRENCY
#   (CPU_CONCURRENCY for CPU workers, deploy.sh's gpu_concurrency for GPU workers),
#   FACEREST_DATA_DIR (/data, where the gallery-data volume is mounted in the API and every
#   worker: the SQLite gallery they share).
"""

# Settings compose.yaml, deploy.sh or the Dockerfiles set per container (HEADER names them).
WIDTH = 98  # the example's lines, comment marks included

SET_BY_CONTAINER = frozenset({"redis_url", "device", "concurrency", "data_dir"})


@dataclass(frozen=True, slots=True)
class Line:
    name: str  # the Settings field
    note: str = ""  # comment lines above it ("" none)
    after: str = ""  # a remark after the value, on the same line


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    lines: tuple[Line, ...]
    note: str = ""


SECTIONS = (
    Section(
        "Which models the workers load",
        (
            Line("profile"),
            Line("detectors", "The profile's models; a list here replaces the profile's."),
            Line(
                "recognizer",
                "arcface_int8: the same network in int8, faster on CPU workers (OpenVINO; not on "
                "a GPU). Its "
                "vectors are its own: collections enrolled with arcface answer 409 on it until "
                "reindexed.",
            ),
            Line("attributes"),
        ),
        note="mtcnn needs PyTorch, which the worker images leave out: build them with "
        "`--build-arg EXTRAS=mtcnn` (docs/deployment.md) before naming it in FACEREST_DETECTORS.",
    ),
    Section(
        "Access",
        (
            Line(
                "api_keys",
                "Comma-separated keys; empty (and no file) = no authentication. deploy.sh "
                "generates one in "
                "a new settings file, and refuses to start with neither keys nor a keys file.",
            ),
            Line(
                "api_keys_file",
                "A file of keys, one a line, as the container sees it (mount it into the api service).",
            ),
            Line(
                "trusted_proxies",
                "With keys off each client address owns a share of the queue: the proxies whose "
                "X-Forwarded-For names the client (CIDRs). compose: the network's subnet, if keys are off.",
            ),
            Line(
                "url_allow",
                "Private networks or hosts that URL input may reach (comma-separated CIDRs and host names).",
            ),
            Line("url_timeout_s"),
            Line("url_max_redirects"),
            Line(
                "webhook_secret",
                "Webhooks (docs/webhooks.md): the signing secret (empty = callbacks refused); with API "
                "keys on, each key gets its own derived secret from GET /webhooks/secret. A default "
                "callback URL, the private networks callbacks may reach, and the retry schedule.",
            ),
            Line("webhook_url"),
            Line("webhook_allow"),
            Line("webhook_timeout_s"),
            Line("webhook_backoff_s"),
            Line("webhook_backoff_max_s"),
            Line("webhook_retry_for_s"),
            Line(
                "flower_auth",
                "Flower's basic auth, user:password: required, the flower container does not "
                "start without it "
                "(Flower's API lists every job id and can shut workers down); deploy.sh "
                "generates it in a new "
                "settings file. Flower is published on 127.0.0.1:5555 only.",
            ),
            Line(
                "flower_port",
                "Where the web page's Flower link points: Flower's port on the API's host (0: no "
                "link). Compose "
                "publishes Flower on 5555; change this only where a proxy of yours publishes it "
                "elsewhere.",
            ),
            Line(
                "compat_port",
                "The drop-in server for DeepStack / CodeProject.AI and CompreFace clients "
                "(docs/integrations.md): its port under make run (compose publishes it on 18082), and "
                "the collection its requests use when the API key names none (keys off, or a "
                '"KEY *" key).',
            ),
            Line("compat_collection"),
            Line(
                "cors_origins",
                "Browser origins allowed to call the API cross-site (comma-separated, "
                "https://app.example); "
                "empty = no CORS headers at all.",
            ),
        ),
    ),
    Section(
        "Limits",
        (
            Line("max_body_bytes", "HAProxy refuses a larger body with 413 before it reaches a replica."),
            Line("max_images"),
            Line("max_image_bytes"),
            Line("max_image_pixels"),
            Line("max_detect_pixels", after="(3840x2160: the detector canvas cap, max_size 0 included)"),
            Line("max_faces"),
            Line("max_faces_per_request", after="(faces across all images of one request: 413 past it)"),
            Line("min_det_threshold", after="(recognize, enroll, verify: a lower det_threshold is 422)"),
            Line("max_queue_depth"),
            Line(
                "max_queued_per_key",
                "Each API key's (with keys off, each client address's) share: 429 past either.",
            ),
            Line("max_images_in_flight_per_key"),
            Line(
                "ingest_job_photos",
                "POST /collections/{c}/photos with more photos than this is split into jobs of this "
                "many, which several workers take at once (docs/people.md).",
            ),
            Line("retry_after_s"),
            Line(
                "max_video_bytes",
                "Videos (docs/video.md): an upload's bytes (also HAProxy's limit on POST /videos, and "
                "the Redis memory its segments take until analysed), its duration, a frame's pixels, "
                "its frames; the segment length; a video URL's download time.",
            ),
            Line("max_video_duration_s"),
            Line("max_video_pixels"),
            Line("max_video_frames"),
            Line("video_segment_s"),
            Line("video_url_timeout_s"),
            Line(
                "response_format",
                "/extract's answer when a request sets no api_ver: auto (the bare list for "
                "2020-style requests, "
                "the envelope for today's InsightFace-REST client), v1 or envelope "
                "(docs/compatibility.md).",
            ),
        ),
    ),
    Section(
        "Time",
        (
            Line(
                "sync_timeout_s",
                "A synchronous /extract answers 504 after this; HAProxy's server timeout is this + 15 s.",
            ),
            Line("result_ttl_s"),
            Line(
                "sync_result_ttl_s",
                "A synchronous job's result after it was delivered: kept only this long, for "
                "Idempotency-Key retries.",
            ),
            Line(
                "visibility_timeout_s",
                "Every process must agree on this one: any worker may return another's expired jobs.",
            ),
            Line(
                "heartbeat_s",
                "A killed worker's jobs are queued again about 3 heartbeats after its last one.",
            ),
            Line("max_attempts"),
        ),
    ),
    Section(
        "Workers",
        (
            Line("batch_max_images"),
            Line("batch_max_faces", "0: the device's default."),
            Line("batch_wait_ms"),
            Line("intra_op_threads", "0: the runtime's default (every core)."),
            Line("detector_backend"),
            Line("recognizer_backend"),
            Line(
                "flip",
                'Default of the request option "flip": embed each face and its mirror image '
                "(docs/accuracy.md).",
            ),
        ),
    ),
    Section(
        "Redis names (every process must agree)",
        (
            Line("queue"),
            Line(
                "queue_lanes",
                "Fair queueing: each API key's (or client address's) jobs go to one of this many "
                "queues, taken "
                "in turn by the workers (docs/security.md); 1 is one queue in arrival order.",
            ),
            Line("key_prefix"),
        ),
    ),
    Section("Logs", (Line("log_format"),)),
    Section(
        "Recognition gallery (docs/recognition.md)",
        (
            Line(
                "gallery_url",
                "Empty: SQLite in the gallery-data volume (/data), shared by the API and the "
                "workers of this "
                "host. Workers on other hosts need one gallery for all: "
                "postgresql://user:password@host/db (PostgreSQL with pgvector; "
                "docs/deployment.md).",
            ),
        ),
    ),
)


def default_text(name: str) -> str:
    """A setting's default as the environment variable would spell it."""
    field = Settings.model_fields[name]
    value = field.default
    if value is None and name in {"detectors", "recognizer", "attributes"}:
        value = getattr(PROFILES[Settings.model_fields["profile"].default], name)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in textwrap.wrap(text, WIDTH - 2)]


def render() -> str:
    out = HEADER.splitlines()
    for section in SECTIONS:
        out += ["", f"# --- {section.title} ".ljust(WIDTH - 2, "-")]
        for line in section.lines:
            if line.note:
                out += _comment(line.note)
            setting = f"# FACEREST_{line.name.upper()}={default_text(line.name)}"
            out.append(f"{setting}   {line.after}" if line.after else setting)
        if section.note:
            out += _comment(section.note)
    return "\n".join(out) + "\n"


def listed() -> list[str]:
    return [line.name for section in SECTIONS for line in section.lines]


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
