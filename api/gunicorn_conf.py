"""gunicorn settings for the API (``gunicorn -c api/gunicorn_conf.py 'api.app:create_app()'``).

Gives the worker processes one Prometheus multiprocess directory, so that /metrics answers the
sum over all of them, whichever process serves the scrape. The variable is set when gunicorn
loads this file, before it imports the app (also with ``--preload``), because prometheus-client
picks its storage when it is first imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

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


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    directory = Path(os.environ.get(MULTIPROC_ENV, ""))
    if directory.name.startswith(OWN_DIR_PREFIX) and directory.parent == Path(tempfile.gettempdir()):
        for item in directory.glob("*.db"):
            item.unlink()
        directory.rmdir()
