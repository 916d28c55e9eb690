"""Alignment, letterboxing, NMS and box decoding on constructed inputs with known answers."""

from __future__ import annotations

import numpy as np

from worker.imaging.align import (
    ARCFACE_DST,
    ARCFACE_SIZE,
    arcface_template,
    estimate_similarity,
    warp_to_template,
)
from worker.imaging.resize import fit_scale, letterbox
from worker.models.postprocess import anchor_centers, box_iou, distance_to_boxes, nms


def test_similarity_recovers_a_known_transform() -> None:
    angle, scale, shift = np.deg2rad(17.0), 2.5, np.array([40.0, -12.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_DST.astype(np.float64)
    dst = src @ rotation.T + shift
    matrix = estimate_similarity(src, dst)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_warp_puts_keypoints_on_the_arcface_template() -> None:
    image = np.zeros((400, 400, 3), np.uint8)
    keypoints = ARCFACE_DST * 2 + 100  # a face twice the template size at (100, 100)
    for x, y in keypoints.astype(int):
        image[y - 1 : y + 2, x - 1 : x + 2] = 255
    crop = warp_to_template(image, keypoints, arcface_template(), ARCFACE_SIZE)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_DST.round().astype(int):
        assert crop[y, x].max() > 100


def test_letterbox_never_upscales_and_pads_to_the_stride() -> None:
    small = letterbox(np.ones((100, 150, 3), np.uint8), (640, 640))
    assert small.scale == 1.0 and small.canvas.shape == (128, 160, 3)
    assert small.canvas[:100, :150].min() == 1 and small.canvas[100:].max() == 0
    large = letterbox(np.ones((800, 1237, 3), np.uint8), (640, 640))
    assert large.canvas.shape == (416, 640, 3)
    assert abs(large.scale - 413 / 800) < 1e-9
    assert fit_scale(1000, 500, (0, 0)) == 1.0


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.8, 0.9, 0.7], np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2]


def test_box_decoding_from_anchor_centres() -> None:
    centers = anchor_centers(2, 3, 8, 2)
    assert centers.shape == (12, 2)
    assert centers[:4].tolist() == [[0, 0], [0, 0], [8, 0], [8, 0]]
    boxes = distance_to_boxes(centers[2:3], np.array([[1, 2, 3, 4]], np.float32))
    assert boxes.tolist() == [[7, -2, 11, 4]]
    assert box_iou(boxes, boxes)[0, 0] == 1.0
