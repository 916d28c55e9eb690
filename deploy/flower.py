"""Flower on facerest's own Celery app: ``python -m deploy.flower [Flower's options]``.

The broker comes from the settings, so Flower follows a Sentinel-managed Redis like the API
and the workers (``celery --broker URL flower`` cannot pass Celery the Sentinel's options).
"""

from __future__ import annotations

import sys

from shared.queue import create_celery
from shared.settings import SettingsError, load_settings


def main(argv: list[str]) -> int:
    try:
        app = create_celery(load_settings())
    except SettingsError as exc:
        print(f"flower: {exc}", file=sys.stderr)
        return 2
    app.start(["flower", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
