"""Flower on facerest's own Celery app: ``python -m deploy.flower [Flower's options]``.

The broker comes from the settings, so Flower follows a Sentinel-managed Redis like the API
and the workers (``celery --broker URL flower`` cannot pass Celery the Sentinel's options).

Flower's pages and its API list every job id and can shut workers down, so it never runs
without basic auth: ``FACEREST_FLOWER_AUTH=user:password`` is required (``make run`` makes one up
when Flower listens on loopback only). ``/healthcheck`` stays open for probes.
"""

from __future__ import annotations

import os
import sys

from shared.queue import create_celery
from shared.settings import SettingsError, load_settings

# Flower's own switch to serve its API without credentials: never honoured here.
UNAUTHENTICATED_API = "FLOWER_UNAUTHENTICATED_API"


def main(argv: list[str]) -> int:
    try:
        settings = load_settings()
        app = create_celery(settings)
    except SettingsError as exc:
        print(f"flower: {exc}", file=sys.stderr)
        return 2
    auth = settings.flower_auth.get_secret_value()
    if not auth:
        print(
            "flower: FACEREST_FLOWER_AUTH is not set: Flower needs basic auth (user:password), "
            "as its API lists every job and can shut workers down",
            file=sys.stderr,
        )
        return 2
    os.environ.pop(UNAUTHENTICATED_API, None)
    # Passed in this process's memory, not on a command line that `ps` shows.
    app.start(["flower", f"--basic-auth={auth}", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
