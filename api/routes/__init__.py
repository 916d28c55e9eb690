"""One blueprint per resource; ``BLUEPRINTS`` is what the app serves and the OpenAPI documents."""

from __future__ import annotations

from flask import Blueprint

from api.routes import (
    collections,
    docs,
    draw,
    extract,
    metrics,
    people,
    results,
    status,
    ui,
    verify,
    videos,
    webhooks,
)

BLUEPRINTS: tuple[Blueprint, ...] = (
    extract.bp,
    draw.bp,
    collections.bp,
    people.bp,
    verify.bp,
    videos.bp,
    results.bp,
    webhooks.bp,
    status.bp,
    docs.bp,
    metrics.bp,
    ui.bp,
)
