"""Box decoding and non-maximum suppression, written once for every anchor-based detector."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def anchor_centers(height: int, width: int, stride: int, anchors: int) -> NDArray[np.float32]:
    """Centres (x, y) of a stride's feature-map cells in input pixels, each repeated per anchor."""
    ys, xs = np.mgrid[:height, :width]
    centers = np.stack([xs, ys], axis=-1).reshape(-1, 2).astype(np.float32) * stride
    return np.repeat(centers, anchors, axis=0) if anchors > 1 else centers


def distance_to_boxes(centers: NDArray[np.float32], ltrb: NDArray[np.float32]) -> NDArray[np.float32]:
    """Boxes from distances (left, top, right, bottom) to each centre."""
    return np.concatenate([centers - ltrb[:, :2], centers + ltrb[:, 2:]], axis=1)


def offsets_to_points(centers: NDArray[np.float32], offsets: NDArray[np.float32]) -> NDArray[np.float32]:
    """Points (N, K, 2) from per-centre offsets (N, 2K)."""
    return centers[:, None, :] + offsets.reshape(len(offsets), -1, 2)


def nms(boxes: NDArray[np.float32], scores: NDArray[np.float32], iou_threshold: float) -> NDArray[np.intp]:
    """Greedy NMS; returns kept indices in descending score order."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = inter_w * inter_h
        iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.intp)


def box_iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """Pairwise IoU of boxes a (N, 4) and b (M, 4), as an (N, M) matrix."""
    a64, b64 = a.astype(np.float64)[:, None, :], b.astype(np.float64)[None, :, :]
    inter_w = np.clip(np.minimum(a64[..., 2], b64[..., 2]) - np.maximum(a64[..., 0], b64[..., 0]), 0, None)
    inter_h = np.clip(np.minimum(a64[..., 3], b64[..., 3]) - np.maximum(a64[..., 1], b64[..., 1]), 0, None)
    inter = inter_w * inter_h
    area_a = (a64[..., 2] - a64[..., 0]) * (a64[..., 3] - a64[..., 1])
    area_b = (b64[..., 2] - b64[..., 0]) * (b64[..., 3] - b64[..., 1])
    result: NDArray[np.float64] = inter / np.maximum(area_a + area_b - inter, 1e-9)
    return result
