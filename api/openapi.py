"""The OpenAPI document, generated from the pydantic wire schemas, and the offline Swagger UI."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from shared.schemas import ExtractRequest


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code")
    message: str = Field(description="What is wrong, naming the field or limit")


class FaceV1(BaseModel):
    vec: list[float] | None = Field(
        description="L2-normalised embedding (512-d ArcFace, or 128-d dlib in the permissive profile)"
    )
    det: int = Field(description="Index of the face in its image")
    prob: float = Field(description="Detection score")
    bbox: list[int] = Field(description="x1, y1, x2, y2 in original image pixels")
    landmarks: list[list[int]] | None = None
    facedata: str | None = Field(None, description="Aligned 112x112 crop, base64 JPEG")
    gender: Literal["female", "male"] | None = Field(None, description="With extract_ga")
    gender_score: float | None = Field(None, description="Probability of the reported gender, 0.5-1")
    age: float | None = Field(None, description="Years, with extract_ga")


class FaceV2(BaseModel):
    bbox: list[float]
    prob: float
    size: list[float] = Field(description="Box width and height in pixels")
    landmarks: list[list[float]] | None = None
    vec: list[float] | None = None
    norm: float | None = Field(None, description="Norm of the raw embedding (a quality hint)")
    facedata: str | None = None
    gender: Literal["female", "male"] | None = Field(None, description="With extract_ga")
    gender_score: float | None = Field(None, description="Probability of the reported gender, 0.5-1")
    age: float | None = Field(None, description="Years, with extract_ga")
    landmarks106: list[list[float]] | None = Field(None, description='With return_landmarks: "106"')


class ModelV2(BaseModel):
    key: str = Field(description="Request name: scrfd, retinaface, mtcnn, arcface, dlib")
    name: str
    version: str = Field(description="The package and version the weights come from")
    license: str


class ImageV2(BaseModel):
    status: Literal["ok", "error"]
    took_ms: float
    size: list[int] | None = Field(None, description="Image width and height")
    faces: list[FaceV2] | None = None
    error: ErrorBody | None = None
    timings: dict[str, float] | None = None


class ExtractV2(BaseModel):
    took: dict[str, float]
    worker: str
    detector: ModelV2
    recognizer: ModelV2 = Field(
        description="Made the vectors; vectors of different recognizers never compare"
    )
    data: list[ImageV2]


class Overload(ErrorBody):
    retry_after_s: int = Field(description="Seconds to wait before retrying (also in Retry-After)")


class JobAccepted(BaseModel):
    id: str
    status: Literal["queued"]
    status_url: str


class JobState(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    created: float
    started: float | None
    finished: float | None
    worker: str | None
    attempts: int = Field(0, description="Deliveries to a worker so far (more than one after a crash)")
    result: Any = Field(None, description="When done: what the synchronous /extract returns")
    error: ErrorBody | None = None


def _json(schema: str, description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{schema}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _error(description: str) -> dict[str, Any]:
    return _json("ErrorBody", description)


def _msgpack() -> dict[str, Any]:
    return {"application/x-msgpack": {"schema": {}}}


def _auth_errors() -> dict[str, Any]:
    return {
        "401": _error("API keys are on and no X-API-Key header was sent"),
        "403": _error("The API key is not valid"),
    }


def build_openapi(version: str) -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (ExtractRequest, "validation"),
        (ErrorBody, "serialization"),
        (FaceV1, "serialization"),
        (ExtractV2, "serialization"),
        (JobAccepted, "serialization"),
        (Overload, "serialization"),
        (JobState, "serialization"),
    ]
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
    extract_ok = {
        "description": "api_ver 1: a list of faces per image; api_ver 2: ExtractV2. "
        "MessagePack when Accept is application/x-msgpack.",
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "array",
                            "items": {"type": "array", "items": {"$ref": "#/components/schemas/FaceV1"}},
                        },
                        {"$ref": "#/components/schemas/ExtractV2"},
                    ]
                }
            },
            **_msgpack(),
        },
    }
    accepted = _json("JobAccepted", 'Queued ("async": true); poll status_url')
    accepted["content"] |= _msgpack()
    overloaded = _json("Overload", "Too many jobs queued (max_queue_depth): retry after Retry-After seconds")
    overloaded["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "string"}}}
    job_state = _json("JobState", "The job")
    job_state["content"] |= _msgpack()
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "facerest",
            "version": version,
            "description": "Face detection, alignment and ArcFace embeddings over HTTP.",
        },
        "paths": {
            "/extract": {
                "post": {
                    "summary": "Detect faces and extract embeddings",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ExtractRequest"}}
                        },
                    },
                    "responses": {
                        "200": extract_ok,
                        "202": accepted,
                        "400": _error("Malformed JSON or request; model_not_loaded: see 'available'"),
                        **_auth_errors(),
                        "413": _error("A size limit was exceeded"),
                        "422": _error("Invalid field, image or image URL"),
                        "500": _error("The job failed in the worker (crashed it max_attempts times)"),
                        "503": overloaded,
                        "504": _error("No result within the synchronous timeout; the body has the job id"),
                    },
                }
            },
            "/results/{job_id}": {
                "get": {
                    "summary": "State and result of a job",
                    "parameters": [
                        {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}},
                        {
                            "name": "wait",
                            "in": "query",
                            "required": False,
                            "description": "Long-poll: answer as soon as the job has finished, or after "
                            "this many seconds (at most sync_timeout_s) with its state then.",
                            "schema": {"type": "number", "minimum": 0},
                        },
                    ],
                    "responses": {
                        "200": job_state,
                        "422": _error("wait is not a number of seconds from 0 to sync_timeout_s"),
                        **_auth_errors(),
                        "404": _error("Unknown or expired job"),
                        "503": _error("Redis unavailable"),
                    },
                }
            },
            "/info": {
                "get": {
                    "summary": "Version, workers, models, licenses, limits",
                    "responses": {
                        "200": {"description": "Service information", "content": {"application/json": {}}},
                        **_auth_errors(),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics: requests, latency, images and faces, queue depth",
                    "responses": {
                        "200": {"description": "Prometheus text format", "content": {"text/plain": {}}},
                        **_auth_errors(),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "API and Redis are up",
                    "security": [],
                    "responses": {
                        "200": {"description": "Healthy", "content": {"application/json": {}}},
                        "503": {"description": "Redis down", "content": {"application/json": {}}},
                    },
                }
            },
            "/ready": {
                "get": {
                    "summary": "At least one worker has its models loaded",
                    "security": [],
                    "responses": {
                        "200": {"description": "Ready", "content": {"application/json": {}}},
                        "503": {"description": "No worker", "content": {"application/json": {}}},
                    },
                }
            },
        },
        # API keys are optional (FACEREST_API_KEYS): without them every operation is open.
        "security": [{}, {"ApiKey": []}],
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
        },
    }


SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>facerest API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});
  </script>
</body>
</html>
"""
