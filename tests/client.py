"""A tiny client the way users call facerest: base64 images in a JSON body."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import requests
from numpy.typing import NDArray


def file2base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def extract(api: str, images: list[bytes], timeout: float = 60, **options: Any) -> requests.Response:
    body = {"images": {"data": [b64(data) for data in images]}, **options}
    return requests.post(f"{api}/extract", json=body, timeout=timeout)


def vectors(faces: list[dict[str, Any]]) -> NDArray[np.float32]:
    return np.array([face["vec"] for face in faces], dtype=np.float32)
