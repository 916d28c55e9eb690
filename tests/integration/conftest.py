"""A real system for the integration tests: Redis, one worker, the API, all real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.launcher import Service, Stack, running_system
from testkit.postgres import running_postgres


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The default profile plus the other detectors, so that requests can choose among all three.
    workdir = Path(tmp_path_factory.mktemp("system"))
    with running_system(workdir, detectors="scrfd,retinaface,mtcnn") as running:
        yield running


@pytest.fixture(scope="session")
def api(system: Stack) -> str:
    return system.api_url


@pytest.fixture(scope="session")
def allowing_api(system: Stack) -> Iterator[str]:
    """A second API on the shared system whose URL allow-list names 127.0.0.1 only."""
    api: Service = system.start_api(extra_env={"FACEREST_URL_ALLOW": "127.0.0.1/32"})
    yield api.url
    api.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """One PostgreSQL (pgvector) server for the session; each module makes its own database on it
    (testkit.postgres.fresh_database)."""
    with running_postgres() as url:
        yield url
