"""GET /openapi.json, /docs (Swagger UI served from the installed package, offline) and / -> /ui."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory
from werkzeug.wrappers.response import Response as BaseResponse

from api.context import context
from api.openapi import SWAGGER_PAGE

bp = Blueprint("docs", __name__)


def _swagger_static() -> Path:
    """Swagger UI's files in the swagger-ui-py package, found without importing it (its
    ``__init__`` loads its framework adapters, which facerest does not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


SWAGGER_STATIC = _swagger_static()


@bp.get("/")
def index() -> BaseResponse:
    # The web page, where a newcomer starts; it links to /docs.
    return redirect("/ui", code=302)


@bp.get("/openapi.json")
def openapi() -> Response:
    return Response(context().openapi, mimetype="application/json")


@bp.get("/docs")
def docs() -> Response:
    return Response(SWAGGER_PAGE, mimetype="text/html")


@bp.get("/docs/static/<path:name>")
def docs_static(name: str) -> Response:
    return send_from_directory(SWAGGER_STATIC, name)
