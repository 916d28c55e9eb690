"""The drop-in server's application factory (gunicorn: ``api.compat.app:create_compat_app()``).

The same context as the API's (settings, Redis, the job store, API keys, the gallery: api/app.py
base_app) with the foreign protocols' routes instead of facerest's, on its own port
(FACEREST_COMPAT_PORT), because DeepStack and CompreFace clients expect their paths at a host's
root. /health and /ready answer as the API's do, for the launcher and compose.
"""

from __future__ import annotations

from importlib.metadata import version

import orjson
from flask import Flask, request

from api import hygiene
from api.app import base_app
from api.compat import compreface, deepstack
from api.errors import register_error_handlers
from api.openapi import build_openapi
from api.routes import docs, status
from shared.settings import Settings, load_settings

# DeepStack clients send forms without files (/list, /delete) url-encoded, or POST /list with no
# body at all (""); a browser on another origin still cannot send either (api/hygiene.py checks
# the origin of every state-changing request).
BODY_TYPES = hygiene.BODY_TYPES | {"application/x-www-form-urlencoded", ""}


def _read_protocol_key() -> None:
    """A protocol that carries its key outside the headers (DeepStack's form field)."""
    if request.blueprint == deepstack.bp.name:
        deepstack.read_key()


BLUEPRINTS = (deepstack.bp, compreface.bp, status.bp)
DESCRIPTION = (
    "facerest's drop-in for DeepStack / CodeProject.AI face clients (/v1/vision/face) and "
    "CompreFace clients (/api/v1, the x-api-key header), on facerest's collections: "
    "docs/integrations.md."
)


def openapi_document() -> dict[str, object]:
    """The drop-in routes' own OpenAPI document; each protocol documents its own key and
    error replies (no facerest 401/403 added)."""
    return build_openapi(
        BLUEPRINTS,
        version("facerest"),
        title="facerest drop-in (DeepStack, CompreFace)",
        description=DESCRIPTION,
        key_header="x-api-key",
        auth_replies={},
    )


def create_compat_app(settings: Settings | None = None) -> Flask:
    document = orjson.dumps(openapi_document())
    app = base_app(settings or load_settings(), document, BODY_TYPES, _read_protocol_key)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    # The API's /openapi.json view (and its endpoint name, open without a key) serves this one.
    app.add_url_rule("/openapi.json", "docs.openapi", docs.openapi)
    register_error_handlers(app)  # what no protocol's table answers: unknown paths, a crash
    return app
