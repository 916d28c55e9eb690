"""gunicorn settings for every API deployment.

``gunicorn -c python:api.gunicorn_conf 'api.app:create_app()'``; command-line flags (or
``GUNICORN_CMD_ARGS``) override these. ``graceful_timeout`` outlasts the longest synchronous
/extract wait, so a replica told to stop finishes every request it already accepted.
"""

from __future__ import annotations

from typing import Any

from api.context import app_context
from api.lifecycle import drain_on_signal
from shared.settings import load_settings

SETTINGS = load_settings()

bind = "0.0.0.0:18080"
worker_class = "gthread"
workers = 2
threads = 16
timeout = 120
graceful_timeout = int(SETTINGS.sync_timeout_s) + 10
keepalive = 5


def post_worker_init(worker: Any) -> None:
    """Runs in each gunicorn worker after the app loaded and gunicorn's signal handlers are set."""
    drain_on_signal(app_context(worker.wsgi).lifecycle)
