"""gunicorn settings for every API deployment.

``gunicorn -c python:api.gunicorn_conf 'api.app:create_app()'``; command-line flags (or
``GUNICORN_CMD_ARGS``) override these.

- ``graceful_timeout`` outlasts the longest synchronous /extract wait, so a replica told to stop
  finishes every request it already accepted; /ready turns 503 first (api/lifecycle.py).
- Requests gunicorn refuses before the app runs (request line or headers too large, malformed)
  are answered in the API's JSON error form by api/gunicorn_worker.py.
- A worker dies with its master (``post_fork``): orphaned workers would keep the listening socket,
  so the port of a killed replica would go on accepting connections that nothing answers, and
  HAProxy would not retry them on a live replica (shared/parent_death.py).
- The worker processes share one Prometheus multiprocess directory, so /metrics answers the sum
  over all of them. The variable is set when gunicorn loads this file, before anything imports
  prometheus-client (which picks its storage at first import): app imports stay inside hooks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from shared.memory import limit_malloc_arenas
from shared.settings import load_settings

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
OWN_DIR_PREFIX = "facerest-metrics-"
# Set once the directory is prepared: a configuration reload (SIGHUP) must not wipe live samples.
PREPARED_ENV = "FACEREST_GUNICORN_METRICS_PREPARED"


def _prepare_metrics_dir() -> None:
    if os.environ.get(PREPARED_ENV):
        return
    os.environ[PREPARED_ENV] = "1"
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        # Samples of a previous run would be added to this one's.
        Path(directory).mkdir(parents=True, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix=OWN_DIR_PREFIX)


_prepare_metrics_dir()
limit_malloc_arenas()  # in the master, before the workers fork and start their threads
SETTINGS = load_settings()

bind = "0.0.0.0:18080"
# gthread, answering requests refused while parsing (414, 431, 400) in JSON, not HTML.
worker_class = "api.gunicorn_worker.JsonErrorWorker"
# gunicorn's limits (its defaults, named here): a longer request line is 414, a larger header
# field or more fields 431. The request body is limited by the app (max_body_bytes, 413).
limit_request_line = 8190
limit_request_field_size = 8190
limit_request_fields = 100
workers = 2
threads = 16
timeout = 120
graceful_timeout = int(SETTINGS.sync_timeout_s) + 10
keepalive = 5
# gunicorn's runtime control socket (gunicornc: reload, scale, shut down) lives at one path per
# user ($HOME/.gunicorn/gunicorn.ctl), so every API replica of a host would claim the same one and
# a command could reach any of them. Processes are managed by the launcher or compose instead.
control_socket_disable = True


def post_fork(server: Any, worker: Any) -> None:
    """Runs in each gunicorn worker right after the fork, before it starts serving."""
    from shared.parent_death import die_with_parent

    die_with_parent(server.pid)


def post_worker_init(worker: Any) -> None:
    """Runs in each gunicorn worker after the app loaded and gunicorn's signal handlers are set."""
    from api.context import app_context
    from api.lifecycle import drain_on_signal

    drain_on_signal(app_context(worker.wsgi).lifecycle)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    directory = Path(os.environ.get(MULTIPROC_ENV, ""))
    if directory.name.startswith(OWN_DIR_PREFIX) and directory.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(directory, ignore_errors=True)
