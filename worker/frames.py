"""The three coordinate frames a face passes through, and the conversions between them.

- full-size image px: the upright (EXIF-rotated) input image at its own size. Every face the
  pipeline returns and every wire record is in this frame.
- decoded px: the pixels the decoder produced; a JPEG may decode at 1/2, 1/4 or 1/8 of full
  size (``DecodedImage.scale`` = decoded / full size). Alignment and the attribute models work
  here, on every pixel there is.
- detector canvas px: the decoded pixels fitted into ``max_size`` and padded to the detector's
  stride (``Letterbox.scale`` = canvas / decoded). Detectors return Detections in this frame.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from worker.imaging.decode import DecodedImage
from worker.imaging.resize import Letterbox, Warped
from worker.models.base import Detections


def canvas_to_decoded(found: Detections, boxed: Letterbox) -> Detections:
    """Detections in detector canvas px -> decoded px."""
    return found.scaled(1.0 / boxed.scale)


# A box on a canvas turned more than 46 degrees from upright swaps its sides: a face window's
# turn sets a face lying more than REFINE_MIN_ROLL = 45 upright; the turned copies' own 45
# degrees (TURN_DEGREES) keep them, within float noise.
SWAP_RATIO = math.tan(math.radians(46))


def warped_to_decoded(found: Detections, warped: Warped) -> Detections:
    """Detections on a warped canvas (a turned copy, a face's window, a photo turned upright) ->
    decoded px: the keypoints mapped back (alignment then undoes any turn); each box's centre
    mapped back and its sides divided by the scale, so that a turned face's box keeps the face's
    size, its width and height swapped where the canvas is turned nearer a quarter turn than
    upright (a face found upright there lies across in the image)."""
    if not len(found):
        return found
    linear, shift = warped.to_image[:, :2], warped.to_image[:, 2]
    keypoints = found.keypoints @ linear.T + shift
    centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2 @ linear.T + shift
    halves = (found.boxes[:, 2:] - found.boxes[:, :2]) / (2 * warped.scale)
    # Turned by more than 45 degrees (by at least 46: a 45 degree turn keeps its sides).
    if abs(linear[0, 1]) > abs(linear[0, 0]) * SWAP_RATIO:
        halves = halves[:, ::-1]
    boxes = np.concatenate([centres - halves, centres + halves], axis=1)
    return Detections(boxes.astype(np.float32), found.scores, keypoints.astype(np.float32))


def decoded_to_full_size(found: Detections, decoded: DecodedImage) -> Detections:
    """Detections in decoded px -> full-size image px."""
    return found.scaled(1.0 / decoded.scale) if decoded.scale != 1.0 else found


def points_decoded_to_full_size(points: NDArray[np.float32], decoded: DecodedImage) -> NDArray[np.float32]:
    """Points (..., 2) in decoded px -> full-size image px."""
    full_size: NDArray[np.float32] = points / decoded.scale
    return full_size
