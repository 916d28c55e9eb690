"""Unit tests see no FACEREST_* variable of the shell that runs them: each test sets what it needs."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def no_facerest_environment() -> Iterator[None]:
    # Session scope, so that module-scoped fixtures that load settings (e.g. a whole analyzer)
    # are built without them too.
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("FACEREST_")]:
            patch.delenv(name)
        yield
