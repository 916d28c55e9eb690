"""The Flask application factory (gunicorn: ``api.app:create_app()``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from importlib.metadata import version

import orjson
from flask import Flask, request

from api import hygiene, observability
from api.auth import OPEN_ENDPOINTS, ApiKeys, request_key
from api.context import EXTENSION_KEY, ApiContext
from api.errors import register_error_handlers
from api.lifecycle import Lifecycle
from api.openapi import build_openapi
from api.routes import BLUEPRINTS
from shared.fetch import UrlFetcher, UrlPolicy
from shared.gallery import open_gallery
from shared.gallery.people import open_people
from shared.images import configure_pillow
from shared.jobs import JobStore, WorkerRegistry
from shared.logs import configure_logging
from shared.queue import create_celery, queue_lanes, video_lane
from shared.redisconn import connect
from shared.settings import Settings, SettingsError, load_settings, warn_unknown_settings
from shared.videos import VideoStore


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    app = base_app(settings, orjson.dumps(build_openapi(BLUEPRINTS, version("facerest"))))
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    return app


def base_app(
    settings: Settings,
    openapi: bytes,
    body_types: frozenset[str] = hygiene.BODY_TYPES,
    read_protocol_key: Callable[[], None] | None = None,
) -> Flask:
    """An app with the API's context, request ids, metrics, hygiene and API keys, and no routes:
    the API (create_app) and the drop-in server (api/compat/app.py) add theirs.
    ``read_protocol_key`` runs before the key is checked (a protocol's own key field)."""
    configure_logging("INFO", settings.log_format, [observability.RequestIdFilter()])
    configure_pillow(settings.max_image_pixels)  # Pillow's bomb limit: the one global write, at start
    warn_unknown_settings(logging.getLogger("facerest.api"), os.environ)
    app = Flask("facerest")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Bounded socket waits: a Redis that vanished fails a request (503) instead of hanging it;
    # redis-py reconnects on the next command once Redis is back.
    client = connect(
        settings.redis_url, health_check_interval=30, socket_connect_timeout=5, socket_timeout=15
    )
    api_keys = ApiKeys(settings.load_api_keys())
    if api_keys.unlimited_bare:
        logging.getLogger("facerest.api").info(
            "%d API key(s) have no collection list and may use every collection; write 'KEY *' to say so, "
            "or 'KEY coll1 coll2' to limit a key",
            api_keys.unlimited_bare,
        )
    if api_keys.callbacks and not settings.webhook_secret.get_secret_value():
        raise SettingsError(
            "an API key names a callback= URL: set FACEREST_WEBHOOK_SECRET to sign its deliveries"
        )
    workers = WorkerRegistry(client, settings.key_prefix)
    app.extensions[EXTENSION_KEY] = ApiContext(
        settings=settings,
        redis=client,
        store=JobStore(client, settings.key_prefix, settings.result_ttl_s),
        workers=workers,
        celery=create_celery(settings),
        lifecycle=Lifecycle(),
        fetcher=UrlFetcher(
            allow=settings.url_allow_list,
            timeout_s=settings.url_timeout_s,
            max_redirects=settings.url_max_redirects,
            max_bytes=settings.max_image_bytes,
        ),
        webhook_policy=UrlPolicy(settings.webhook_allow_list, setting="FACEREST_WEBHOOK_ALLOW"),
        api_keys=api_keys,
        metrics=observability.ApiMetrics(
            observability.QueueCollector(client, queue_lanes(settings), workers, video_lane(settings))
        ),
        openapi=openapi,
        gallery=open_gallery(settings.gallery_url.get_secret_value(), settings.data_dir),
        people=open_people(settings.gallery_url.get_secret_value(), settings.data_dir),
        videos=VideoStore(client, settings.key_prefix, settings.result_ttl_s),
    )
    observability.install(app, app.extensions[EXTENSION_KEY].metrics)
    # Before authentication: preflights carry no key.
    hygiene.install(app, settings.cors_origin_list, body_types)
    if read_protocol_key is not None:
        app.before_request(read_protocol_key)
    if api_keys.enabled:

        @app.before_request
        def _authenticate() -> None:
            if request.endpoint not in OPEN_ENDPOINTS:
                api_keys.check(request_key())

    return app
