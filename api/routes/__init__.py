"""One blueprint per resource; ``BLUEPRINTS`` is what the app serves and the OpenAPI documents."""

from __future__ import annotations

from flask import Blueprint

from api.routes import docs, extract, metrics, results, status, ui

BLUEPRINTS: tuple[Blueprint, ...] = (extract.bp, results.bp, status.bp, docs.bp, metrics.bp, ui.bp)
