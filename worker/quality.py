"""Face quality: sharpness of the recognizer's aligned crop, head pose from the 5 keypoints, face
size, and one combined score in [0, 1] (docs/recognition.md, "Face quality").

Pure functions of a face's crop, keypoints and box: no model, a few microseconds per face.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

from shared.contract import FaceQuality
from worker.imaging.align import ARCFACE_DST

# Variance of the Laplacian of the 112x112 grey crop at which sharpness is 0.5: package photos'
# in-focus faces score 75-450, the same photos blurred (Gaussian sigma 3) 3-16.
SHARPNESS_HALF = 100.0
# Face size (the box's shorter side, full-size px) below which a face counts as useless, and
# from which it counts as fully usable: ArcFace's crop is 112 px, and faces of 40 px still match.
SIZE_USELESS = 12.0
SIZE_FULL = 56.0
# Depth of the nose tip in front of the eyes as a share of the eye-to-eye distance, and in front
# of the mouth-eye line as a share of the eye-to-mouth distance (an adult face's proportions).
NOSE_DEPTH_PER_EYE_SPAN = 0.5
NOSE_DEPTH_PER_FACE_HEIGHT = 0.43
# Where the nose tip sits between the eye line and the mouth line of a frontal face (ArcFace's
# template: 0.495).
FRONTAL_NOSE_HEIGHT = float(
    (ARCFACE_DST[2, 1] - ARCFACE_DST[:2, 1].mean()) / (ARCFACE_DST[3:, 1].mean() - ARCFACE_DST[:2, 1].mean())
)


def sharpness(crop: NDArray[np.uint8]) -> float:
    """0 (flat) ... 1 (sharp): the variance of the Laplacian of the grey aligned crop, squashed."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    variance = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return variance / (variance + SHARPNESS_HALF)


def pose(keypoints: NDArray[np.float32]) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from eyes, nose tip and mouth corners (image px, the
    eye on the image's left first, as the detectors give them): an estimate from proportions, good to
    about 10 degrees while both eyes are visible. Positive yaw: the nose points to the image's
    right; positive pitch: up; positive roll: the eye line turns clockwise on the image.
    All-zero keypoints (an aligned crop sent as such) count as frontal."""
    points = keypoints.astype(np.float64)
    if not points.any():
        return 0.0, 0.0, 0.0
    left_eye, right_eye, nose = points[0], points[1], points[2]
    mouth = points[3:5].mean(axis=0)
    eyes = (left_eye + right_eye) / 2
    roll = math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0])
    cos, sin = math.cos(-roll), math.sin(-roll)
    upright = np.array([[cos, -sin], [sin, cos]])

    def level(point: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(upright @ (point - eyes), np.float64)

    span = float(np.linalg.norm(right_eye - left_eye))
    nose_u, mouth_u = level(nose), level(mouth)
    height = max(float(mouth_u[1]), 1e-6)
    along = float(nose_u[1]) / height
    midline_x = along * float(mouth_u[0])  # the eyes' midpoint is the origin
    offset = (float(nose_u[0]) - midline_x) / max(span / 2, 1e-6)
    # The nose tip moves by depth x sin(yaw) while the eye span shrinks by cos(yaw).
    yaw = math.atan2(offset, 2 * NOSE_DEPTH_PER_EYE_SPAN)
    pitch = math.atan2(FRONTAL_NOSE_HEIGHT - along, NOSE_DEPTH_PER_FACE_HEIGHT)
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def size_score(box: NDArray[np.float32]) -> float:
    side = float(min(box[2] - box[0], box[3] - box[1]))
    return min(1.0, max(0.0, (side - SIZE_USELESS) / (SIZE_FULL - SIZE_USELESS)))


def face_quality(
    crop: NDArray[np.uint8], keypoints: NDArray[np.float32], box: NDArray[np.float32]
) -> FaceQuality:
    """All of a face's measures and ``quality``: the product of sharpness, the pose factor
    (cos yaw x cos pitch; roll is undone by alignment) and the size factor, each in [0, 1]."""
    sharp = sharpness(crop)
    yaw, pitch, roll = pose(keypoints)
    frontal = max(0.0, math.cos(math.radians(yaw))) * max(0.0, math.cos(math.radians(pitch)))
    size = float(min(box[2] - box[0], box[3] - box[1]))
    combined = sharp * frontal * size_score(box)
    return FaceQuality(
        quality=round(combined, 4),
        sharpness=round(sharp, 4),
        yaw=round(yaw, 1),
        pitch=round(pitch, 1),
        roll=round(roll, 1),
        size=round(size, 1),
    )
