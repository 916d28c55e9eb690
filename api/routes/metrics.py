"""GET /metrics: the API's Prometheus metrics (all gunicorn processes) and the queue depth."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.context import context
from api.openapi import Operation, Reply, documented

bp = Blueprint("metrics", __name__)

METRICS_DOC = Operation(
    summary="Prometheus metrics: requests, latency, images and faces, queue depth",
    replies={200: Reply("Prometheus text format", media_type="text/plain")},
)


@bp.get("/metrics")
@documented(METRICS_DOC)
def metrics() -> Response:
    return Response(context().metrics.render(), content_type=CONTENT_TYPE_LATEST)
