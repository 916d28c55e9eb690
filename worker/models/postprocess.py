"""Box decoding, priors and non-maximum suppression, written once for every detector.

SCRFD regresses distances from anchor centres; RetinaFace regresses SSD-style offsets from prior
boxes; MTCNN regresses box corners relative to candidate boxes. All of them end in ``nms``.
"""

from __future__ import annotations

from typing import Literal

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


def prior_boxes(height: int, width: int, stride: int, sizes: tuple[int, ...]) -> NDArray[np.float32]:
    """SSD priors (cx, cy, w, h) in input pixels: one square per size at each cell's centre."""
    centers = anchor_centers(height, width, stride, len(sizes)) + stride / 2
    side = np.tile(np.asarray(sizes, np.float32), height * width)[:, None]
    return np.concatenate([centers, side, side], axis=1).astype(np.float32)


def decode_prior_boxes(
    priors: NDArray[np.float32], deltas: NDArray[np.float32], variances: tuple[float, float]
) -> NDArray[np.float32]:
    """Boxes (x1, y1, x2, y2) from SSD offsets: centre shift x variance x prior size, log-size x variance."""
    centers = priors[:, :2] + deltas[:, :2] * variances[0] * priors[:, 2:]
    sizes = priors[:, 2:] * np.exp(deltas[:, 2:] * variances[1])
    return np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1).astype(np.float32)


def decode_prior_points(
    priors: NDArray[np.float32], deltas: NDArray[np.float32], variance: float
) -> NDArray[np.float32]:
    """Points (N, K, 2) from SSD offsets (N, 2K), each relative to its prior's centre and size."""
    scaled = deltas.reshape(len(deltas), -1, 2) * variance * priors[:, None, 2:]
    return offsets_to_points(priors[:, :2], scaled.reshape(len(deltas), -1))


def regress_boxes(
    boxes: NDArray[np.float32], deltas: NDArray[np.float32], inclusive: bool = True
) -> NDArray[np.float32]:
    """Move each corner by a fraction of the box's size (MTCNN's regression).

    ``inclusive``: a box x1..x2 is x2 - x1 + 1 pixels wide (MTCNN's later stages), else x2 - x1.
    """
    sizes = boxes[:, 2:4] - boxes[:, :2] + (1 if inclusive else 0)
    moved: NDArray[np.float32] = (boxes[:, :4] + deltas * np.concatenate([sizes, sizes], axis=1)).astype(
        np.float32
    )
    return moved


def square_boxes(boxes: NDArray[np.float32]) -> NDArray[np.float32]:
    """Boxes grown to squares of their longer side around the same centre."""
    sizes = boxes[:, 2:4] - boxes[:, :2]
    side = sizes.max(axis=1, keepdims=True)
    corner = boxes[:, :2] + sizes / 2 - side / 2
    return np.concatenate([corner, corner + side], axis=1).astype(np.float32)


def nms(
    boxes: NDArray[np.float32],
    scores: NDArray[np.floating],
    iou_threshold: float,
    overlap: Literal["union", "min"] = "union",
    inclusive: bool = True,
) -> NDArray[np.intp]:
    """Greedy NMS; returns kept indices in descending score order.

    ``overlap="min"`` divides the intersection by the smaller area (MTCNN's last stage), which
    also removes a box lying inside a larger one. ``inclusive``: boxes cover x1..x2 inclusive
    (one pixel more than x2 - x1), as in the reference SCRFD; torchvision's NMS is not.
    """
    x1, y1, x2, y2 = boxes.T
    extra = 1 if inclusive else 0
    areas = (x2 - x1 + extra) * (y2 - y1 + extra)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        inter_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + extra)
        inter_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + extra)
        inter = inter_w * inter_h
        if overlap == "min":
            iou = inter / np.minimum(areas[best], areas[rest])
        else:
            iou = inter / (areas[best] + areas[rest] - inter)
        order = rest[iou <= iou_threshold]
    return np.array(keep, dtype=np.intp)


def merge_passes(
    boxes: NDArray[np.float32], scores: NDArray[np.float32], ranks: NDArray[np.intp], iou_threshold: float
) -> NDArray[np.intp]:
    """Kept indices of faces found by several passes over one image (boxes in one frame), in
    descending score order: NMS in which a face of a lower rank always wins over an overlapping
    face of a higher rank, and the score decides within a rank."""
    # Scores lie in [0, 1]: 2 per rank orders ranks first; float64 keeps float32 scores' order.
    priority = scores.astype(np.float64) + 2.0 * (int(ranks.max(initial=0)) - ranks)
    keep = nms(boxes, priority, iou_threshold)
    return keep[np.argsort(-scores[keep], kind="stable")]


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


def has_free_square(boxes: NDArray[np.floating], width: float, height: float, side: float) -> bool:
    """Whether a ``side`` x ``side`` square fits in the width x height frame without
    overlapping any of ``boxes`` (x1, y1, x2, y2 in that frame)."""
    if side > width or side > height:
        return False
    # A free square slid left, then up, until it meets a box or the frame's edge stays free and
    # has its left edge at 0 or at a box's right edge, its top at 0 or at a box's bottom edge.
    lefts = np.concatenate([[0.0], boxes[:, 2]])
    tops = np.concatenate([[0.0], boxes[:, 3]])
    lefts, tops = lefts[lefts + side <= width], tops[tops + side <= height]
    # Per left edge, every top edge against every box at once (a tops x boxes array).
    beside_rows = (boxes[None, :, 1] < tops[:, None] + side) & (boxes[None, :, 3] > tops[:, None])
    for left in lefts:
        in_column = (boxes[:, 0] < left + side) & (boxes[:, 2] > left)
        if not (beside_rows & in_column[None, :]).any(axis=1).all():
            return True
    return False
