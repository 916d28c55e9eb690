"""gunicorn settings for the API (``gunicorn -c api/gunicorn_conf.py 'api.app:create_app()'``).

Gives the worker processes one Prometheus multiprocess directory, so that /metrics answers the
sum over all of them, whichever process serves the scrape.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def on_starting(server: Any) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Samples of a previous run would be added to this one's.
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="facerest-metrics-")


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if directory.name.startswith("facerest-metrics-") and directory.parent == Path(tempfile.gettempdir()):
        for item in directory.glob("*.db"):
            item.unlink()
        directory.rmdir()
