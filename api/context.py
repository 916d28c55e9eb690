"""Per-app dependencies, stored on the Flask app (not in module globals)."""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from flask import Flask, current_app

from api.auth import ApiKeys
from api.lifecycle import Lifecycle
from api.observability import ApiMetrics
from shared.fetch import UrlFetcher, UrlPolicy
from shared.gallery import Gallery
from shared.gallery.people import PeopleStore
from shared.jobs import JobStore, WorkerRegistry
from shared.settings import Settings
from shared.videos import VideoStore

EXTENSION_KEY = "facerest"


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    redis: redis.Redis
    store: JobStore
    workers: WorkerRegistry
    celery: Celery
    lifecycle: Lifecycle
    fetcher: UrlFetcher
    webhook_policy: UrlPolicy  # where callbacks may go (checked again by the courier at delivery)
    api_keys: ApiKeys
    metrics: ApiMetrics
    openapi: bytes  # the OpenAPI document, built once at start
    gallery: Gallery  # collections: read and deleted here, searched and written by the workers
    people: PeopleStore  # people discovery: listed and decided here, ingested by the workers
    videos: VideoStore  # what a video's segments delivered so far (docs/video.md)


def context() -> ApiContext:
    return app_context(current_app)


def app_context(app: Flask) -> ApiContext:
    ctx: ApiContext = app.extensions[EXTENSION_KEY]
    return ctx
