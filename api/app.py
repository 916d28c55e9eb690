"""The Flask application factory (gunicorn: ``api.app:create_app()``)."""

from __future__ import annotations

import logging

import redis
from flask import Flask

from api.context import EXTENSION_KEY, ApiContext
from api.errors import register_error_handlers
from api.lifecycle import Lifecycle
from api.routes import docs, extract, results, status
from shared.jobs import JobStore, WorkerRegistry
from shared.queue import create_celery
from shared.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask("facerest")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    client = redis.Redis.from_url(settings.redis_url, health_check_interval=30)
    app.extensions[EXTENSION_KEY] = ApiContext(
        settings=settings,
        redis=client,
        store=JobStore(client, settings.key_prefix, settings.result_ttl_s),
        workers=WorkerRegistry(client, settings.key_prefix),
        celery=create_celery(settings),
        lifecycle=Lifecycle(),
    )
    for blueprint in (extract.bp, results.bp, status.bp, docs.bp):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    return app
