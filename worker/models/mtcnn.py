"""MTCNN (facenet-pytorch's P-, R- and O-nets) with 5 keypoints, run by PyTorch on the worker's device.

The cascade follows facenet-pytorch 2.6.0's ``detect_face`` step by step, including its pixel
conventions (torchvision's NMS in stages 1-2, inclusive box sizes after stage 1), except that the
candidate geometry runs in numpy with the shared NMS and box regression: its torchvision
dependency does not load beside our torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from torch.nn import functional

from worker.inference.files import ModelSpec
from worker.models.base import Detections
from worker.models.postprocess import nms, regress_boxes, square_boxes

MTCNN_MIN_FACE = 20  # px: the smallest face the image pyramid looks for
MTCNN_SCALE_FACTOR = 0.709  # ratio between pyramid levels
MTCNN_STAGE_THRESHOLDS = (0.6, 0.7)  # P-net, R-net; the O-net uses the request's threshold
PNET_STRIDE = 2
PNET_CELL = 12  # px: P-net's receptive field, the box one output cell stands for
RNET_SIZE = 24
ONET_SIZE = 48
PIXEL_MEAN = 127.5
PIXEL_SCALE = 0.0078125


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 10, kernel_size=3)
        self.prelu1 = nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(10, 16, kernel_size=3)
        self.prelu2 = nn.PReLU(16)
        self.conv3 = nn.Conv2d(16, 32, kernel_size=3)
        self.prelu3 = nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, kernel_size=1)
        self.conv4_2 = nn.Conv2d(32, 4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.prelu1(self.conv1(x))
        x = self.pool1(x)
        x = self.prelu2(self.conv2(x))
        x = self.prelu3(self.conv3(x))
        return self.conv4_2(x), functional.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 28, kernel_size=3)
        self.prelu1 = nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(28, 48, kernel_size=3)
        self.prelu2 = nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(48, 64, kernel_size=2)
        self.prelu3 = nn.PReLU(64)
        self.dense4 = nn.Linear(576, 128)
        self.prelu4 = nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))
        # The weights were converted from Caffe: flatten in (W, H, C) order.
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense5_2(x), functional.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3)
        self.prelu1 = nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3)
        self.prelu2 = nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3)
        self.prelu3 = nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4 = nn.Conv2d(64, 128, kernel_size=2)
        self.prelu4 = nn.PReLU(128)
        self.dense5 = nn.Linear(1152, 256)
        self.prelu5 = nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), functional.softmax(self.dense6_1(x), dim=1)


def _load(net: nn.Module, path: Path, device: str) -> nn.Module:
    net.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return net.to(device).eval()


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - PIXEL_MEAN) * PIXEL_SCALE


class MTCNN:
    """The three-stage cascade; ``paths`` are the verified pnet, rnet and onet state dicts."""

    # Its image pyramid runs down to P-net's 12 px cell: faces filling the frame are found.
    full_frame_side = 0

    def __init__(self, paths: list[Path], spec: ModelSpec, device: str, threads: int = 0) -> None:
        self.spec = spec
        self._device = device
        if threads:
            # PyTorch's pool is per process; the worker runs one model call at a time anyway.
            torch.set_num_threads(threads)
        pnet_path, rnet_path, onet_path = paths
        self._pnet = _load(PNet(), pnet_path, device)
        self._rnet = _load(RNet(), rnet_path, device)
        self._onet = _load(ONet(), onet_path, device)

    def detect_batch(
        self, canvases: Sequence[NDArray[np.uint8]], thresholds: Sequence[float]
    ) -> list[Detections]:
        """One canvas at a time: the cascade's later stages depend on each image's candidates."""
        return [
            self._detect_one(canvas, threshold)
            for canvas, threshold in zip(canvases, thresholds, strict=True)
        ]

    def _detect_one(self, canvas: NDArray[np.uint8], threshold: float) -> Detections:
        with torch.inference_mode():
            image = torch.as_tensor(canvas, device=self._device).permute(2, 0, 1)[None].float()
            boxes = self._propose(image)
            if len(boxes):
                boxes = self._refine(image, boxes)
            if len(boxes) == 0:
                return Detections.empty()
            return self._finish(image, boxes, threshold)

    def _scales(self, height: int, width: int) -> list[float]:
        scale = PNET_CELL / MTCNN_MIN_FACE
        side = min(height, width) * scale
        scales = []
        while side >= PNET_CELL:
            scales.append(scale)
            scale *= MTCNN_SCALE_FACTOR
            side *= MTCNN_SCALE_FACTOR
        return scales

    def _propose(self, image: torch.Tensor) -> NDArray[np.float32]:
        """Stage 1: P-net over the image pyramid; square candidate boxes (N, 5) with scores."""
        height, width = image.shape[2:]
        found = []
        for scale in self._scales(height, width):
            size = (int(height * scale + 1), int(width * scale + 1))
            deltas, probs = self._pnet(_normalise(functional.interpolate(image, size=size, mode="area")))
            prob = probs[0, 1].cpu().numpy()
            ys, xs = np.nonzero(prob >= MTCNN_STAGE_THRESHOLDS[0])
            if len(ys) == 0:
                continue
            cells = np.stack([xs, ys], axis=1).astype(np.float32) * PNET_STRIDE
            boxes = np.concatenate(
                [np.floor((cells + 1) / scale), np.floor((cells + PNET_CELL) / scale)], axis=1
            ).astype(np.float32)
            scores = prob[ys, xs].astype(np.float32)
            level = np.concatenate([boxes, scores[:, None], deltas[0][:, ys, xs].cpu().numpy().T], axis=1)
            found.append(level[nms(boxes, scores, 0.5, inclusive=False)])
        if not found:
            return np.zeros((0, 5), np.float32)
        candidates = np.concatenate(found)
        candidates = candidates[nms(candidates[:, :4], candidates[:, 4], 0.7, inclusive=False)]
        boxes = square_boxes(regress_boxes(candidates[:, :4], candidates[:, 5:9], inclusive=False))
        return np.concatenate([boxes, candidates[:, 4:5]], axis=1)

    def _crops(self, image: torch.Tensor, boxes: NDArray[np.float32], size: int) -> torch.Tensor:
        """Crops inside the image (clipped, 1-based inclusive like facenet-pytorch), resized to size."""
        height, width = image.shape[2:]
        corners = np.trunc(boxes[:, :4]).astype(np.int64)
        x1, y1 = np.maximum(corners[:, 0], 1), np.maximum(corners[:, 1], 1)
        x2, y2 = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
        crops = []
        for left, top, right, bottom in zip(x1, y1, x2, y2, strict=True):
            patch = image[:, :, max(top - 1, 0) : max(bottom, top), max(left - 1, 0) : max(right, left)]
            crops.append(functional.interpolate(patch, size=(size, size), mode="area"))
        return _normalise(torch.cat(crops))

    def _refine(self, image: torch.Tensor, boxes: NDArray[np.float32]) -> NDArray[np.float32]:
        """Stage 2: R-net rescoring and regression."""
        deltas, probs = self._rnet(self._crops(image, boxes, RNET_SIZE))
        scores = probs[:, 1].cpu().numpy()
        keep = np.flatnonzero(scores > MTCNN_STAGE_THRESHOLDS[1])
        boxes, scores, offsets = boxes[keep], scores[keep], deltas.cpu().numpy()[keep]
        keep = nms(boxes[:, :4], scores, 0.7, inclusive=False)
        refined = square_boxes(regress_boxes(boxes[keep, :4], offsets[keep]))
        return np.concatenate([refined, scores[keep, None]], axis=1).astype(np.float32)

    def _finish(self, image: torch.Tensor, boxes: NDArray[np.float32], threshold: float) -> Detections:
        """Stage 3: O-net scores, box regression and the 5 keypoints."""
        deltas, points, probs = self._onet(self._crops(image, boxes, ONET_SIZE))
        scores = probs[:, 1].cpu().numpy()
        keep = np.flatnonzero(scores > threshold)
        if keep.size == 0:
            return Detections.empty()
        boxes, scores = boxes[keep, :4], scores[keep].astype(np.float32)
        relative, offsets = points.cpu().numpy()[keep], deltas.cpu().numpy()[keep]
        sizes = boxes[:, 2:4] - boxes[:, :2] + 1
        # O-net gives the 5 xs, then the 5 ys, as fractions of the (inclusive) box.
        keypoints = np.stack(
            [
                relative[:, :5] * sizes[:, :1] + boxes[:, :1] - 1,
                relative[:, 5:] * sizes[:, 1:] + boxes[:, 1:2] - 1,
            ],
            axis=-1,
        ).astype(np.float32)
        found = Detections(regress_boxes(boxes, offsets), scores, keypoints)
        return found.take(nms(found.boxes, found.scores, 0.7, overlap="min"))
