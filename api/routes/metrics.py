"""GET /metrics: the API's Prometheus metrics (all gunicorn processes) and the queue depth."""

from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api.context import context

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    return Response(context().metrics.render(), content_type=CONTENT_TYPE_LATEST)
