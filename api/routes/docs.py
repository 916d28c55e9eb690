"""GET /openapi.json, /docs (Swagger UI served from the installed package, offline) and / -> /ui."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory
from werkzeug.wrappers.response import Response as BaseResponse

from api.context import context
from api.hygiene import with_page_policy

bp = Blueprint("docs", __name__)


def _swagger_static() -> Path:
    """Swagger UI's files in the swagger-ui-py package, found without importing it (its
    ``__init__`` loads its framework adapters, which facerest does not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


SWAGGER_STATIC = _swagger_static()
SWAGGER_INIT = 'window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});'
SWAGGER_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>facerest API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>{SWAGGER_INIT}</script>
</body>
</html>
"""
# /docs shares its origin with the web page, whose sessionStorage holds the user's API key: it
# runs Swagger UI's own files and its one inline line (allowed by its hash, so that no other
# inline script can run), is never framed, and talks to this origin only. Swagger UI shows
# images the API answers (thumbnails) from blob: URLs and its icons from data: URLs.
SWAGGER_INIT_HASH = base64.b64encode(hashlib.sha256(SWAGGER_INIT.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'self'; script-src 'self' 'sha256-{SWAGGER_INIT_HASH}'; "
    "style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
)


def _with_policy(response: Response) -> Response:
    return with_page_policy(response, CONTENT_SECURITY_POLICY)


@bp.get("/")
def index() -> BaseResponse:
    # The web page, where a newcomer starts; it links to /docs.
    return redirect("/ui", code=302)


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(context().openapi, mimetype="application/json")


@bp.get("/docs")
def docs() -> Response:
    return _with_policy(Response(SWAGGER_PAGE, mimetype="text/html"))


@bp.get("/docs/static/<path:name>")
def docs_static(name: str) -> Response:
    return _with_policy(send_from_directory(SWAGGER_STATIC, name))
