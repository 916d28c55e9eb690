"""Request hygiene at the API's edge: accepted body media types, the origin of browser writes, and CORS.

- A POST body must say what it is: ``application/json``, ``application/msgpack`` (or
  ``application/x-msgpack``) or ``multipart/form-data``; anything else is 415. A web page can
  POST ``text/plain`` or a form to another site without a CORS preflight, so without this check
  any page a user visits could queue jobs and URL fetches here (cross-site request forgery).
- A browser request that changes state (POST, PUT, PATCH, DELETE) must come from this service's
  own pages or an origin ``FACEREST_CORS_ORIGINS`` lists, else 403 ``cross_origin_refused``:
  a multipart ``fetch(..., {mode: "no-cors"})`` from any page is sent without a preflight, so the
  media-type check alone does not stop it. Browsers say where a request comes from in ``Origin``
  and ``Sec-Fetch-Site``, headers a page cannot set; a client that sends neither (curl, the
  Python client, InsightFace-REST's clients) is no browser and is not checked. The rule is the
  same with API keys on: a page's key is not sent cross-site by itself, but one rule for every
  deployment is simpler to reason about than two.
- CORS is closed unless ``FACEREST_CORS_ORIGINS`` names origins: then a preflight from one of
  them is answered, and responses to it carry ``Access-Control-Allow-Origin``; other origins
  get no Access-Control-* header, so browsers keep their answers from the page.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request
from werkzeug.exceptions import UnsupportedMediaType

from shared.errors import CrossOriginRefused

BODY_TYPES = frozenset(
    {"application/json", "application/msgpack", "application/x-msgpack", "multipart/form-data"}
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sec-Fetch-Site values that are the browser's own word for "not another origin": "same-origin",
# and "none" (the user's own action: a typed address, a bookmark). "same-site" is refused: a site
# ignores ports and subdomains, so it takes in any other service on the same host (a dev server
# on localhost:3000) and every sibling subdomain, each another origin.
OWN_SITES = frozenset({"same-origin", "none"})
MAX_HEADER_SHOWN = 100
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Content-Type, X-API-Key, Authorization, Idempotency-Key, X-Request-ID"
CORS_EXPOSED = "Retry-After, X-Request-ID"
CORS_MAX_AGE_S = 600


def with_page_policy(response: Response, policy: str) -> Response:
    """A page's headers: its Content-Security-Policy, no MIME sniffing, no referrer sent on."""
    response.headers["Content-Security-Policy"] = policy
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def check_media_type(body_types: frozenset[str] = BODY_TYPES) -> None:
    """Refuse a body whose Content-Type is not one the app reads (415)."""
    if request.method not in BODY_METHODS:
        return
    media_type = request.mimetype  # lowercased, without parameters ("" when missing)
    if media_type not in body_types:
        raise UnsupportedMediaType(
            f"Content-Type {media_type or '(none)'!r} is not accepted; send one of "
            f"{', '.join(sorted(body_types))}"
        )


def is_own_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` names this service as the browser saw it, by its ``Host`` header.

    For browsers that send ``Origin`` but no ``Sec-Fetch-Site`` (older Safari). The scheme is not
    compared: behind a proxy that ends TLS (HAProxy) the app sees http where the browser saw
    https, and the Host header (which HAProxy passes on as it came) already names the server,
    scheme-defining port included (browsers leave the default port out of both headers).
    """
    parts = urlsplit(origin)
    return parts.scheme in {"http", "https"} and bool(host) and parts.netloc.lower() == host.lower()


def _shown(header: str) -> str:
    """A header's value fit for a message: ASCII-escaped, cut short (any client can send anything)."""
    return ascii(header)[1:-1][:MAX_HEADER_SHOWN]


def check_origin(allowed: frozenset[str]) -> None:
    """Refuse a browser's state-changing request from a foreign web origin (403)."""
    if request.method not in STATE_CHANGING_METHODS:
        return
    origin = request.headers.get("Origin")
    site = request.headers.get("Sec-Fetch-Site")
    if origin is None and site is None:
        return  # not a browser: nothing a web page could have made it send
    if origin is not None and origin in allowed:
        return
    if site is not None:
        if site in OWN_SITES:  # the browser's own verdict, scheme and port included
            return
    elif origin is not None and is_own_origin(origin, request.headers.get("Host", "")):
        return
    shown = "" if origin is None else f" {_shown(origin)!r}"
    raise CrossOriginRefused(
        f"a {request.method} from another web origin{shown} (Sec-Fetch-Site: {_shown(site or 'absent')}) is "
        "refused: only this service's own pages and the origins in FACEREST_CORS_ORIGINS may send it"
    )


def install(app: Flask, origins: tuple[str, ...], body_types: frozenset[str] = BODY_TYPES) -> None:
    """Register the checks; run them before authentication (a preflight carries no API key).
    ``body_types``: the media types the app reads (the drop-in server also takes forms)."""
    allowed = frozenset(origin.rstrip("/") for origin in origins)

    @app.before_request
    def _preflight_origin_and_media_type() -> Response | None:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and request.headers.get("Access-Control-Request-Method"):
            response = Response(status=204)
            del response.headers["Content-Type"]  # no body
            if origin in allowed:
                response.headers["Access-Control-Allow-Methods"] = CORS_METHODS
                response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
                response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_S)
            return response
        check_origin(allowed)
        check_media_type(body_types)
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
