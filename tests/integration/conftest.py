"""A real system for the integration tests: Redis, one worker, the API, all real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import Stack, stack


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The default profile plus the other detectors, so that requests can choose among all three.
    with stack(Path(tmp_path_factory.mktemp("system")), detectors="scrfd,retinaface,mtcnn") as running:
        running.start_worker()
        running.start_api()
        yield running


@pytest.fixture(scope="session")
def api(system: Stack) -> str:
    return system.api_url
