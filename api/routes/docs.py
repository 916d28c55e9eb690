"""GET /openapi.json, /docs (Swagger UI served from the installed package, offline) and / -> /ui."""

from __future__ import annotations

import swagger_ui_bundle
from flask import Blueprint, Response, redirect, send_from_directory
from werkzeug.wrappers.response import Response as BaseResponse

from api.context import context
from api.openapi import SWAGGER_PAGE

bp = Blueprint("docs", __name__)


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
    return send_from_directory(swagger_ui_bundle.swagger_ui_path, name)
