"""GET /ui: the web page (plain HTML, CSS and JavaScript modules shipped in the package, no build
step, nothing fetched from elsewhere). It calls the API from the browser like any client: the
page itself needs no API key (it holds no data); its requests send the key the user types."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, send_from_directory

from api.hygiene import with_page_policy

bp = Blueprint("ui", __name__)

UI_DIR = Path(__file__).resolve().parent.parent / "ui"
# The page runs only its own files: no inline script, nothing from another origin. Photos are
# shown from blob: URLs (files the user chose) and the webcam from a media stream.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)


def _with_policy(response: Response) -> Response:
    # A page that is updated with the package must not run an old script against a new API.
    response.headers["Cache-Control"] = "no-cache"
    return with_page_policy(response, CONTENT_SECURITY_POLICY)


@bp.get("/ui")
def page() -> Response:
    return _with_policy(send_from_directory(UI_DIR, "index.html"))


@bp.get("/ui/<path:name>")
def static(name: str) -> Response:
    # send_from_directory refuses paths that leave UI_DIR (404).
    return _with_policy(send_from_directory(UI_DIR, name))
