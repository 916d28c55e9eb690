"""Request hygiene at the API's edge: accepted body media types, and CORS.

- A POST body must say what it is: ``application/json``, ``application/msgpack`` (or
  ``application/x-msgpack``) or ``multipart/form-data``; anything else is 415. A web page can
  POST ``text/plain`` or a form to another site without a CORS preflight, so without this check
  any page a user visits could queue jobs and URL fetches here (cross-site request forgery).
- CORS is closed unless ``FACEREST_CORS_ORIGINS`` names origins: then a preflight from one of
  them is answered, and responses to it carry ``Access-Control-Allow-Origin``; other origins
  get no Access-Control-* header, so browsers keep their answers from the page.
"""

from __future__ import annotations

from flask import Flask, Response, request
from werkzeug.exceptions import UnsupportedMediaType

BODY_TYPES = frozenset(
    {"application/json", "application/msgpack", "application/x-msgpack", "multipart/form-data"}
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Content-Type, X-API-Key, Authorization, Idempotency-Key, X-Request-ID"
CORS_EXPOSED = "Retry-After, X-Request-ID"
CORS_MAX_AGE_S = 600


def check_media_type() -> None:
    """Refuse a body whose Content-Type is not one the API reads (415)."""
    if request.method not in BODY_METHODS:
        return
    media_type = request.mimetype  # lowercased, without parameters ("" when missing)
    if media_type not in BODY_TYPES:
        raise UnsupportedMediaType(
            f"Content-Type {media_type or '(none)'!r} is not accepted; send application/json, "
            "application/msgpack or multipart/form-data"
        )


def install(app: Flask, origins: tuple[str, ...]) -> None:
    """Register the checks; run them before authentication (a preflight carries no API key)."""
    allowed = frozenset(origin.rstrip("/") for origin in origins)

    @app.before_request
    def _preflight_and_media_type() -> Response | None:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            response = Response(status=204)
            del response.headers["Content-Type"]  # no body
            if origin in allowed:
                response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
                response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
            return response
        check_media_type()
        return None

    @app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if allowed:
            response.vary.add("Origin")
        if origin is not None and origin in allowed:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        return response
