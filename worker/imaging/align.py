"""Face alignment: a similarity transform from 5 keypoints to the ArcFace template."""

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


def norm_crop(
    image: NDArray[np.uint8], keypoints: NDArray[np.floating], size: int = ARCFACE_SIZE
) -> NDArray[np.uint8]:
    """Warp the face given by 5 keypoints into a ``size`` x ``size`` ArcFace crop."""
    template = ARCFACE_DST * (size / ARCFACE_SIZE)
    matrix = estimate_similarity(keypoints, template)
    crop = cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)
    return np.asarray(crop, dtype=np.uint8)
