"""The fixed benchmark workload: package-shipped photos and generated variants, as JPEG bytes.

Sizes from 640x480 to 1920x1080 and 0 to 20+ faces; every image is built deterministically
from the photos that testkit/photos.py lists, so anyone gets the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from testkit.photos import GROUP_PHOTOS, encode, read_rgb


@dataclass(frozen=True, slots=True)
class WorkItem:
    name: str
    jpeg: bytes
    width: int
    height: int


def _fit(image: NDArray[np.uint8], width: int, height: int) -> NDArray[np.uint8]:
    """Scale into width x height (proportions kept) and pad with grey."""
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (int(image.shape[1] * scale), int(image.shape[0] * scale)))
    canvas = np.full((height, width, 3), 127, np.uint8)
    canvas[: resized.shape[0], : resized.shape[1]] = resized
    return canvas


def _mosaic(images: list[NDArray[np.uint8]], width: int, height: int) -> NDArray[np.uint8]:
    half_w, half_h = width // 2, height // 2
    tiles = [_fit(image, half_w, half_h) for image in images]
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def workload() -> list[WorkItem]:
    t1 = read_rgb(GROUP_PHOTOS["t1.jpg"])
    players = read_rgb(GROUP_PHOTOS["players.jpg"])
    gdp = read_rgb(GROUP_PHOTOS["gdp.jpg"])
    yao = read_rgb(GROUP_PHOTOS["yaoming.jpg"])
    rng = np.random.default_rng(0)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 5)
    images = {
        "empty-640x480": np.asarray(noise, np.uint8),
        "portrait-640x480": _fit(yao, 640, 480),
        "one-face-1280x720": _fit(gdp, 1280, 720),
        "group6-1280x886": t1,
        "group6-1920x1080": _fit(t1, 1920, 1080),
        "players-1237x800": players,
        "players-1920x1080": _fit(players, 1920, 1080),
        "mosaic-1920x1080": _mosaic([t1, players, gdp, t1], 1920, 1080),
    }
    return [WorkItem(name, encode(image), image.shape[1], image.shape[0]) for name, image in images.items()]
