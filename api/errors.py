"""The API edge: domain errors and framework errors become JSON ``{code, message}`` responses."""

from __future__ import annotations

import logging

import orjson
import redis
from flask import Flask, Response, g, has_request_context
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from api.context import context
from shared.errors import (
    CollectionForbidden,
    CollectionNotFound,
    CrossOriginRefused,
    FaceNotFound,
    FaceRestError,
    IdempotencyConflict,
    InvalidApiKey,
    InvalidField,
    InvalidImage,
    InvalidRequest,
    InvalidVideo,
    JobFailed,
    JobNotFound,
    LimitExceeded,
    MissingApiKey,
    ModelNotLoaded,
    NoWebhookSecret,
    Overloaded,
    RecognizerMismatch,
    ResultTimeout,
    ServiceUnavailable,
    SubjectExists,
    SubjectNotFound,
    TooManyJobs,
    UrlFetchFailed,
    UrlRefused,
)

log = logging.getLogger("facerest.api")

STATUS_BY_ERROR: dict[type[FaceRestError], int] = {
    InvalidRequest: 400,
    InvalidImage: 422,
    InvalidVideo: 422,
    InvalidField: 422,
    UrlRefused: 422,
    UrlFetchFailed: 422,
    LimitExceeded: 413,
    MissingApiKey: 401,
    InvalidApiKey: 403,
    Overloaded: 503,
    TooManyJobs: 429,
    JobNotFound: 404,
    IdempotencyConflict: 409,
    ResultTimeout: 504,
    ServiceUnavailable: 503,
    JobFailed: 500,
    CollectionNotFound: 404,
    SubjectNotFound: 404,
    FaceNotFound: 404,
    SubjectExists: 409,
    RecognizerMismatch: 409,
    CollectionForbidden: 403,
    CrossOriginRefused: 403,
    NoWebhookSecret: 404,
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: object
) -> Response:
    body = {"code": code, "message": message, **extra}
    return Response(orjson.dumps(body), status=status, mimetype="application/json", headers=headers)


def _status_of(exc: FaceRestError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return 400


def _retry_after() -> dict[str, str]:
    """Every 503 and 504 says when to come back (the overload answer carries its own value)."""
    return {"Retry-After": str(context().settings.retry_after_s)}


def _request_id() -> str:
    return str(g.get("request_id", "")) if has_request_context() else ""


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(FaceRestError)
    def _domain(exc: FaceRestError) -> Response:
        extra: dict[str, object] = {}
        headers: dict[str, str] = {}
        if isinstance(exc, ResultTimeout):
            extra = {"id": exc.job_id, "status_url": f"/results/{exc.job_id}"}
        elif isinstance(exc, Overloaded):
            headers["Retry-After"] = str(exc.retry_after_s)
            extra = {"retry_after_s": exc.retry_after_s}
        elif isinstance(exc, MissingApiKey):
            headers["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
        elif isinstance(exc, ModelNotLoaded) and exc.available:
            extra = {"available": exc.available}
        status = _status_of(exc)
        if status in (503, 504) and "Retry-After" not in headers:
            headers |= _retry_after()
        return error_response(status, exc.code, exc.message, headers, **extra)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return error_response(422, "validation_error", _describe(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        message = exc.description or exc.name
        if isinstance(exc, RequestEntityTooLarge):
            message = f"the request body is larger than max_body_bytes={app.config['MAX_CONTENT_LENGTH']}"
        headers: dict[str, str] = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        if status in (503, 504):
            headers |= _retry_after()
        return error_response(status, code, message, headers)

    # Only a Redis that cannot be reached is "unavailable": any other Redis error (a WRONGTYPE
    # reply, a script error) is a bug, answered as one.
    @app.errorhandler(redis.ConnectionError)
    @app.errorhandler(redis.TimeoutError)
    @app.errorhandler(redis.ReadOnlyError)  # a replica during a Sentinel failover
    def _redis_unreachable(exc: redis.RedisError) -> Response:
        log.warning("Redis unavailable: %s", exc)
        return error_response(
            503, "unavailable", "the job store (Redis) is unavailable; retry later", _retry_after()
        )

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(
            500, "internal_error", f"internal error; see the API log (request id {_request_id()})"
        )
