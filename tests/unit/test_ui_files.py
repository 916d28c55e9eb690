"""The web page's files ship in the api package: every one of them is package data (else the API's
Docker image, which installs the package, would serve a page with missing files)."""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath

from api.routes.ui import UI_DIR

ROOT = Path(__file__).resolve().parents[2]


def _matches(path: PurePosixPath, pattern: str) -> bool:
    """setuptools' glob: "*" stays within one folder."""
    return len(path.parts) == len(PurePosixPath(pattern).parts) and path.match(pattern)


def test_every_file_of_the_page_is_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["api"]
    api = ROOT / "api"
    files = [PurePosixPath(path.relative_to(api).as_posix()) for path in UI_DIR.rglob("*") if path.is_file()]
    assert files and api / "ui" == UI_DIR
    missing = [str(f) for f in files if not any(_matches(f, pattern) for pattern in patterns)]
    assert missing == [], f"add these to [tool.setuptools.package-data] api: {missing}"
