"""Face alignment: a similarity transform from 5 keypoints to a model's template (ArcFace, dlib chips)."""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

ARCFACE_SIZE = 112
# Where the eyes, nose tip and mouth corners land in a 112x112 ArcFace crop (x, y px).
ARCFACE_DST = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def estimate_similarity(src: NDArray[np.floating], dst: NDArray[np.floating]) -> NDArray[np.float64]:
    """Least-squares similarity transform (Umeyama 1991): rotation, uniform scale, translation.

    Returns the 2x3 matrix mapping ``src`` points onto ``dst`` points.
    """
    src64, dst64 = src.astype(np.float64), dst.astype(np.float64)
    src_mean, dst_mean = src64.mean(axis=0), dst64.mean(axis=0)
    src_c, dst_c = src64 - src_mean, dst64 - dst_mean
    covariance = dst_c.T @ src_c / len(src64)
    reflection = np.eye(2)
    if np.linalg.det(covariance) < 0:
        reflection[1, 1] = -1
    u, singular, vt = np.linalg.svd(covariance)
    rotation = u @ reflection @ vt
    scale = np.trace(np.diag(singular) @ reflection) / src_c.var(axis=0).sum()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - matrix[:, :2] @ src_mean
    return matrix


# Where the detectors' 5 keypoints (eyes, nose tip, mouth corners) land in dlib's face chip, in
# its unit frame (padding 0). dlib aligns with its own 5-point shape predictor (eye corners and
# nose base); these points were fitted to that alignment on 19 faces of the test photos with
# scripts/fit_dlib_template.py, then made left/right symmetric about their mean centre line.
DLIB_CHIP_POINTS = np.array(
    [
        [0.2439, 0.1865],
        [0.7961, 0.1865],
        [0.5200, 0.5118],
        [0.2895, 0.7785],
        [0.7505, 0.7785],
    ],
    dtype=np.float32,
)


def arcface_template(size: int = ARCFACE_SIZE) -> NDArray[np.float32]:
    return (ARCFACE_DST * (size / ARCFACE_SIZE)).astype(np.float32)


def dlib_chip_template(size: int, padding: float) -> NDArray[np.float32]:
    """The keypoints' place in a ``size`` px dlib chip with ``padding`` (as get_face_chip_details)."""
    return ((DLIB_CHIP_POINTS + padding) / (1 + 2 * padding) * size).astype(np.float32)


def warp_to_template(
    image: NDArray[np.uint8], keypoints: NDArray[np.floating], template: NDArray[np.floating], size: int
) -> NDArray[np.uint8]:
    """Warp the face given by 5 keypoints so that they land on ``template`` in a square crop."""
    matrix = estimate_similarity(keypoints, template)
    crop = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
    return np.asarray(crop, dtype=np.uint8)


# Keypoint order after a horizontal mirror: the eyes and the mouth corners swap sides.
MIRRORED_KEYPOINT_ORDER = [1, 0, 2, 4, 3]


def warp_mirrored_to_template(
    image: NDArray[np.uint8], keypoints: NDArray[np.floating], template: NDArray[np.floating], size: int
) -> NDArray[np.uint8]:
    """The crop ``warp_to_template`` would give on the mirrored image, without mirroring the image."""
    width = image.shape[1]
    # Mirroring maps pixel column x to width - 1 - x.
    flip = np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mirrored = keypoints[MIRRORED_KEYPOINT_ORDER].astype(np.float64) * [-1.0, 1.0] + [width - 1.0, 0.0]
    matrix = estimate_similarity(mirrored, template) @ flip
    crop = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
    return np.asarray(crop, dtype=np.uint8)


def roll_degrees(keypoints: NDArray[np.float32]) -> NDArray[np.float32]:
    """How far each face (keypoints (n, 5, 2): eyes, nose, mouth corners) is turned in the image
    plane, counter-clockwise as seen, in degrees (-180 to 180; 0: upright): the direction from
    the eyes' midpoint to the mouth's, which a profile face's landmarks still give (its eye line
    does not: the far eye sits next to the near one)."""
    down = keypoints[:, 3:5].mean(axis=1) - keypoints[:, 0:2].mean(axis=1)
    roll: NDArray[np.float32] = np.degrees(np.arctan2(down[:, 0], down[:, 1])).astype(np.float32)
    return roll


def upright_quarters(rolls: NDArray[np.float32], scores: NDArray[np.float32]) -> int:
    """The quarter turns (counter-clockwise, as ``np.rot90`` counts them: 0 to 3) that would set
    the faces of ``rolls`` (``roll_degrees``) upright, where most of them (weighed by their
    detection ``scores``) lie the same way more than 45 degrees from upright; else 0."""
    if not len(rolls):
        return 0
    quarters = np.round(-rolls.astype(np.float64) / 90).astype(np.intp) % 4
    weights = np.bincount(quarters, weights=scores.astype(np.float64), minlength=4)
    most = int(weights.argmax())
    return most if weights[most] > weights.sum() / 2 else 0


def turn_onto(
    centre: tuple[float, float], degrees: float, scale: float, target: tuple[float, float]
) -> NDArray[np.float64]:
    """The 2x3 map that turns image px ``degrees`` counter-clockwise about ``centre``, scales
    them by ``scale`` and puts ``centre`` at ``target`` (a canvas's middle)."""
    matrix = np.asarray(cv2.getRotationMatrix2D(centre, degrees, scale), np.float64)
    matrix[:, 2] += np.array([target[0] - centre[0], target[1] - centre[1]])
    return matrix
