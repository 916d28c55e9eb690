"""Alignment, letterboxing, NMS and box decoding on constructed inputs with known answers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from worker.frames import warped_to_decoded
from worker.imaging.align import (
    ARCFACE_DST,
    ARCFACE_SIZE,
    arcface_template,
    estimate_similarity,
    roll_degrees,
    upright_quarters,
    warp_to_template,
)
from worker.imaging.resize import (
    DETECTOR_STRIDE,
    capped_size,
    coarse_levels,
    face_window,
    fit_scale,
    letterbox,
    quarter_turned,
    shrink,
    turned,
)
from worker.models.base import Detections
from worker.models.postprocess import (
    anchor_centers,
    box_iou,
    distance_to_boxes,
    has_free_square,
    merge_passes,
    nms,
)


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


def test_letterbox_scales_a_photo_over_the_pixel_cap_down_to_it_whatever_max_size() -> None:
    """max_size 0 (no resizing) on a 36 MP photo: the canvas holds at most max_pixels of it."""
    cap = 3840 * 2160
    photo = np.ones((4912, 7360, 3), np.uint8)
    for max_size in ((0, 0), (8000, 8000), (7360, 7360)):
        boxed = letterbox(photo, max_size, max_pixels=cap)
        height, width = boxed.canvas.shape[:2]
        used_h, used_w = round(4912 * boxed.scale), round(7360 * boxed.scale)
        assert used_w * used_h <= cap < (used_w + 2) * (used_h + 2)  # as large as the cap allows
        assert height - used_h < DETECTOR_STRIDE and width - used_w < DETECTOR_STRIDE
        assert boxed.canvas[used_h - 1, used_w - 1].max() == 1
    # Under the cap, or with a max_size that already fits it, nothing changes.
    assert letterbox(photo, (640, 640), max_pixels=cap).canvas.shape == (448, 640, 3)
    assert letterbox(np.ones((2160, 3840, 3), np.uint8), (0, 0), max_pixels=cap).scale == 1.0
    assert fit_scale(7360, 4912, (0, 0), 0) == 1.0


def test_static_canvases_fill_max_size_shrunk_to_the_cap() -> None:
    """On a GPU, canvases fill max_size; one larger than the cap is shrunk to it first."""
    cap = 3840 * 2160
    width, height = capped_size((8000, 8000), cap)
    assert width == height and width * height <= cap < (width + 1) * (height + 1)
    assert capped_size((640, 640), cap) == (640, 640) and capped_size((0, 0), cap) == (0, 0)
    boxed = letterbox(np.ones((1000, 1500, 3), np.uint8), (8000, 8000), fill_max_size=True, max_pixels=cap)
    assert boxed.canvas.shape[:2] == (-(-height // 32) * 32, -(-width // 32) * 32)
    assert abs(boxed.scale - 1.0) < 1e-9  # a small photo is still not upscaled


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


def test_coarse_levels_shrink_by_four_until_a_full_frame_face_fits() -> None:
    boxed = letterbox(np.ones((1080, 1920, 3), np.uint8), (640, 640))
    (coarse,) = coarse_levels(boxed, full_frame_side=320)
    assert (coarse.width, coarse.height, coarse.canvas.shape) == (160, 90, (96, 160, 3))
    assert coarse.scale == boxed.scale * 90 / 360
    assert coarse_levels(letterbox(np.ones((240, 320, 3), np.uint8), (640, 640)), 320) == []
    assert coarse_levels(boxed, full_frame_side=0) == []  # the detector sees every size
    huge = letterbox(np.ones((2160, 3840, 3), np.uint8), (0, 0))
    assert [level.width for level in coarse_levels(huge, 320)] == [960, 240]


def test_shrunk_static_canvas_keeps_one_shape_per_request_size() -> None:
    """On a GPU (fill_canvas) every photo of a request size gives the coarse pass one shape."""
    for shape in ((1080, 1920, 3), (1920, 1080, 3), (500, 500, 3)):
        boxed = letterbox(np.ones(shape, np.uint8), (640, 640), fill_max_size=True)
        assert shrink(boxed, 4, fill_canvas=True).canvas.shape == (160, 160, 3)


def test_merge_keeps_the_first_pass_face_where_passes_overlap_and_adds_the_rest() -> None:
    boxes = np.array(
        [[0, 0, 100, 100], [300, 300, 340, 340], [2, 2, 104, 98], [500, 0, 900, 400]], np.float32
    )
    scores = np.array([0.7, 0.65, 0.95, 0.9], np.float32)
    ranks = np.array([0, 0, 1, 1])
    # The coarse face at (2, 2) scores higher but overlaps the main pass's: the main pass's stays.
    assert merge_passes(boxes, scores, ranks, 0.4).tolist() == [3, 0, 1]


def test_free_square_is_found_beside_below_or_between_boxes_and_not_where_none_fits() -> None:
    none = np.zeros((0, 4), np.float32)
    assert has_free_square(none, 640, 480, 320)
    assert not has_free_square(none, 640, 300, 320)  # the frame itself is too low
    # One face in the middle of a 640x480 frame leaves no 320 px square free ...
    middle = np.array([[200, 100, 440, 380]], np.float32)
    assert not has_free_square(middle, 640, 480, 320)
    # ... at the left edge it leaves the right side: 640 - 300 = 340 px wide.
    left = np.array([[0, 100, 300, 380]], np.float32)
    assert has_free_square(left, 640, 480, 320)
    assert not has_free_square(left, 640, 480, 341)
    # A row of small faces across the middle (a group photo): none above or below fits 320 px.
    row = np.array([[x, 200, x + 60, 270] for x in range(0, 640, 100)], np.float32)
    assert not has_free_square(row, 640, 480, 320)
    assert has_free_square(row, 640, 480, 200)  # 0..200 above the row is free
    # Two faces leaving a gap between them exactly one square wide.
    pair = np.array([[0, 0, 100, 480], [420, 0, 640, 480]], np.float32)
    assert has_free_square(pair, 640, 480, 320)
    assert not has_free_square(pair, 640, 480, 321)


def test_face_window_maps_canvas_px_back_to_image_px() -> None:
    image = np.zeros((400, 300, 3), np.uint8)
    image[100:300, 50:250] = 255  # a 200 px "face"
    box = np.array([50, 100, 250, 300], np.float32)
    window = face_window(image, box, 160, 2.0)
    assert window.canvas.shape == (320, 320, 3)
    assert window.scale == 320 / 400
    # The face sits in the middle of the canvas, at 160 px; the rest (outside the image) is zero.
    back = np.array([[80, 80, 1], [240, 240, 1]], np.float32) @ window.to_image.T
    np.testing.assert_allclose(back, [[50, 100], [250, 300]], atol=1e-4)
    assert window.canvas[160, 160].tolist() == [255, 255, 255]
    assert window.canvas[10, 10].tolist() == [0, 0, 0]


@pytest.mark.parametrize("zoom", [1, 10])
def test_turned_face_window_sets_a_lying_face_upright(zoom: int) -> None:
    """A face lying on its side (its left eye above its right one, the mouth to their left: a face
    turned 90 degrees clockwise): roll_degrees says -90, and the window turned back by it puts
    the eyes level, left to right, above the mouth, and its nose mark where the nose maps to.
    zoom 1: an 80 px face, enlarged to 160 px; zoom 10: an 800 px one, shrunk (area-averaged
    first, then turned)."""
    keypoints = np.array([[[200, 80], [200, 120], [180, 100], [160, 80], [160, 120]]], np.float32) * zoom
    assert roll_degrees(keypoints)[0] == pytest.approx(-90.0)
    image = np.zeros((300 * zoom, 300 * zoom, 3), np.uint8)
    for x, y in keypoints[0].astype(int):
        image[y - 2 * zoom : y + 3 * zoom, x - 2 * zoom : x + 3 * zoom] = 255
    box = np.array([150, 60, 230, 140], np.float32) * zoom
    window = face_window(image, box, 160, 2.0, degrees=90.0)
    assert window.canvas.shape == (320, 320, 3) and window.scale == pytest.approx(2.0 / zoom)
    to_canvas = cv2.invertAffineTransform(window.to_image)
    on_canvas = keypoints[0] @ to_canvas[:, :2].T + to_canvas[:, 2]
    assert roll_degrees(on_canvas[None])[0] == pytest.approx(0.0, abs=1e-3)
    assert on_canvas[0, 0] < on_canvas[1, 0] and on_canvas[0, 1] == pytest.approx(on_canvas[1, 1], abs=1e-3)
    assert on_canvas[3, 1] > on_canvas[0, 1] and on_canvas[3, 0] < on_canvas[4, 0]
    centre = np.array([190, 100], np.float32) * zoom  # the box's, in the middle of the window
    np.testing.assert_allclose(centre @ to_canvas[:, :2].T + to_canvas[:, 2], [160, 160], atol=2.0)
    assert window.canvas[round(on_canvas[2, 1]), round(on_canvas[2, 0])].min() > 200


def test_turned_copy_holds_the_whole_photo_and_maps_detections_back() -> None:
    """A 120x80 photo turned 45 degrees at sqrt(2) its scale spans (120 + 80) px each way, padded
    to the stride; a point on the canvas maps back to where it came from, and a box keeps its
    centre and its size over the turn's scale."""
    image = np.zeros((80, 120, 3), np.uint8)
    image[10:20, 100:110] = 255  # a marked square near the top-right corner
    boxed = letterbox(image, (640, 640))
    copy = turned(image, boxed, 45)
    assert copy.canvas.shape == (224, 224, 3) and copy.scale == np.sqrt(2)
    ys, xs = np.nonzero(copy.canvas[..., 0] > 128)
    centre = np.array([xs.mean(), ys.mean()], np.float32)
    found = Detections(
        np.array([[*(centre - 7), *(centre + 7)]], np.float32),
        np.array([0.9], np.float32),
        np.tile(centre, (1, 5, 1)).astype(np.float32),
    )
    back = warped_to_decoded(found, copy)
    assert np.allclose(back.keypoints[0], [104.5, 14.5], atol=1.0)
    assert np.allclose(
        back.boxes[0],
        [104.5 - 7 / np.sqrt(2), 14.5 - 7 / np.sqrt(2), 104.5 + 7 / np.sqrt(2), 14.5 + 7 / np.sqrt(2)],
        atol=1.0,
    )
    still = letterbox(image, (640, 640), fill_max_size=True)
    assert turned(image, still, -45, fill_canvas=True).canvas.shape == still.canvas.shape


@pytest.mark.parametrize("quarters", [0, 1, 2, 3, -1])
def test_quarter_turned_photo_maps_each_pixel_and_box_back_exactly(quarters: int) -> None:
    """A 120x80 photo turned by np.rot90: a marked pixel's centre maps back to its own, and a box
    around a 10x20 (wide x tall) mark maps back onto it, its sides swapped by an odd turn."""
    image = np.zeros((80, 120, 3), np.uint8)
    image[30:50, 90:100] = 255  # x 90-100, y 30-50
    image[5, 7] = 128  # one pixel: x 7, y 5
    copy = quarter_turned(image, quarters)
    np.testing.assert_array_equal(copy.canvas, np.rot90(image, quarters))
    assert copy.scale == 1.0
    (y,), (x,) = np.nonzero(copy.canvas[..., 0] == 128)
    np.testing.assert_allclose(np.array([x + 0.5, y + 0.5, 1.0]) @ copy.to_image.T, [7.5, 5.5])
    ys, xs = np.nonzero(copy.canvas[..., 0] == 255)
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    found = Detections(box, np.array([0.9], np.float32), np.zeros((1, 5, 2), np.float32))
    np.testing.assert_allclose(warped_to_decoded(found, copy).boxes[0], [90, 30, 100, 50], atol=1e-4)


def test_upright_quarters_turns_a_photo_whose_faces_mostly_lie_the_same_way() -> None:
    """The quarter turns (np.rot90's count) that set most of the faces upright, by score."""
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert upright_quarters(np.array([80, 95, 70], np.float32), scores) == 3  # lying left: turn clockwise
    assert upright_quarters(np.array([-80, -95, -60], np.float32), scores) == 1
    assert upright_quarters(np.array([178, -170, 175], np.float32), scores) == 2
    assert upright_quarters(np.array([10, -40, 44], np.float32), scores) == 0  # within 45: upright
    assert upright_quarters(np.array([10, 85, 85], np.float32), np.array([0.9, 0.4, 0.4], np.float32)) == 0
    assert upright_quarters(np.array([10, 85, 85], np.float32), scores) == 3
    assert upright_quarters(np.zeros(0, np.float32), np.zeros(0, np.float32)) == 0
