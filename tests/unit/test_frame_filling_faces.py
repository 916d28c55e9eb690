"""Faces that fill the frame are found at every photo size and max_size (the coarse detection
passes), and the coarse passes change nothing where the main pass finds every face."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from shared.contract import AnalysisOptions, ImageResult
from shared.settings import load_settings
from testkit.coarse import Recording, main_pass_only, recorded
from testkit.photos import GROUP_PHOTOS, T1_FACE_BOX, encode, pasted_face, read_rgb, tilted_crop
from worker.analyzer import FaceAnalyzer
from worker.imaging.resize import letterbox
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.postprocess import box_iou

pytestmark = pytest.mark.slow
DEFAULT = AnalysisOptions()
NO_RESIZE = AnalysisOptions(max_size=(0, 0))
MAX_IMAGE_PIXELS = 40_000_000


@pytest.fixture(scope="module")
def analyzers() -> Iterator[tuple[FaceAnalyzer, FaceAnalyzer]]:
    """The worker's pipeline (SCRFD, ArcFace) and the same models with the main pass only."""
    settings = load_settings(profile="insightface", detectors="scrfd", recognizer="arcface", attributes="")
    full = load_analyzer(settings, Device("cpu"))
    main_only = FaceAnalyzer(main_pass_only(full.models, "scrfd"), settings.max_image_pixels)
    yield full, main_only
    full.close()
    main_only.close()


def _boxes(result: ImageResult) -> np.ndarray:
    return np.array([face.bbox for face in result.faces], np.float32).reshape(-1, 4)


# (canvas width, height), face height px, the requests that must find it. Faces at least 20 px
# on the main canvas up to the whole frame; 8000 px wide photos are over the detector's canvas
# cap (FACEREST_MAX_DETECT_PIXELS), so max_size 0 runs three passes there (3840, 960, 240 px).
CASES = [
    ((112, 112), 20, (DEFAULT,)),
    ((112, 112), 112, (DEFAULT,)),
    ((640, 480), 20, (DEFAULT,)),
    ((640, 480), 480, (DEFAULT,)),
    ((2000, 1500), 40, (NO_RESIZE,)),
    ((2000, 1500), 1500, (DEFAULT, NO_RESIZE)),
    ((8000, 4500), 1000, (NO_RESIZE,)),
    ((8000, 4500), 4500, (DEFAULT, NO_RESIZE)),
]


@pytest.mark.parametrize(("canvas", "face_height", "requests"), CASES)
def test_pasted_face_is_found_at_every_size(
    canvas: tuple[int, int],
    face_height: int,
    requests: tuple[AnalysisOptions, ...],
    analyzers: tuple[FaceAnalyzer, FaceAnalyzer],
) -> None:
    full, _ = analyzers
    image, box = pasted_face(canvas, face_height)
    data = encode(image)
    for options in requests:
        (result,) = full.analyze([data], options)
        assert result.status == "ok" and len(result.faces) == 1, (options.max_size, result.faces)
        assert box_iou(_boxes(result), box[None]).max() >= 0.5
        assert result.faces[0].vec is not None


def test_main_pass_alone_misses_a_face_filling_a_1280_px_canvas(
    analyzers: tuple[FaceAnalyzer, FaceAnalyzer],
) -> None:
    """Why the coarse passes exist: SCRFD-500M does not see faces over about 340 canvas px."""
    _, main_only = analyzers
    image, box = pasted_face((1280, 960), 960)
    (result,) = main_only.analyze([encode(image)], NO_RESIZE)
    assert not result.faces or box_iou(_boxes(result), box[None]).max() < 0.5


def test_coarse_passes_change_nothing_where_the_main_pass_finds_every_face(
    analyzers: tuple[FaceAnalyzer, FaceAnalyzer],
) -> None:
    """Same boxes, scores and vectors, bit for bit, as the main pass alone (insightface's)."""
    full, main_only = analyzers
    photos = [path.read_bytes() for path in GROUP_PHOTOS.values()]
    larger = AnalysisOptions(max_size=(1280, 1280))
    for photo_list, options in ((photos, DEFAULT), (photos[:1], larger)):
        pairs = zip(full.analyze(photo_list, options), main_only.analyze(photo_list, options), strict=True)
        for ours, main in pairs:
            assert len(ours.faces) == len(main.faces) > 0
            for a, b in zip(ours.faces, main.faces, strict=True):
                assert (a.bbox, a.prob, a.landmarks, a.vec) == (b.bbox, b.prob, b.landmarks, b.vec)


def test_retinaface_gets_the_coarse_passes_too() -> None:
    """RetinaFace sees larger faces than SCRFD (up to about 480 canvas px), not a 1500 px one."""
    settings = load_settings(profile="permissive", detectors="retinaface", recognizer="dlib", attributes="")
    analyzer = load_analyzer(settings, Device("cpu"))
    image, box = pasted_face((2000, 1500), 1500)
    try:
        (result,) = analyzer.analyze([encode(image)], NO_RESIZE)
    finally:
        analyzer.close()
    assert len(result.faces) == 1
    assert box_iou(_boxes(result), box[None]).max() >= 0.5


@contextmanager
def _recording(full: FaceAnalyzer) -> Iterator[tuple[FaceAnalyzer, Recording]]:
    """``full``'s models in an analyzer that records every detector input's shape."""
    models, recording = recorded(full.models, "scrfd")
    analyzer = FaceAnalyzer(models, MAX_IMAGE_PIXELS)
    try:
        yield analyzer, recording
    finally:
        analyzer.close()


def test_coarse_passes_run_only_where_a_face_too_large_for_the_main_pass_fits(
    analyzers: tuple[FaceAnalyzer, FaceAnalyzer],
) -> None:
    """t1.jpg's six faces leave no 320 px square of the 640 px canvas free: one detector call;
    a face filling a 1280 px canvas (max_size 0), which the main pass misses: the coarse pass
    too (the 240 px image padded to 256), then the window around its face (320 px)."""
    full, _ = analyzers
    with _recording(full) as (recorded, recording):
        (group,) = recorded.analyze([GROUP_PHOTOS["t1.jpg"].read_bytes()], DEFAULT)
        assert len(group.faces) == 6
        assert recording.shapes == [(448, 640, 3)]
        recording.shapes.clear()
        image, box = pasted_face((1280, 960), 960)
        (portrait,) = recorded.analyze([encode(image)], NO_RESIZE)
        assert recording.shapes == [(960, 1280, 3), (256, 320, 3), (320, 320, 3)]
        assert len(portrait.faces) == 1 and box_iou(_boxes(portrait), box[None]).max() >= 0.5


def test_a_face_filling_a_small_photo_is_found_at_twice_its_scale(
    analyzers: tuple[FaceAnalyzer, FaceAnalyzer],
) -> None:
    """A 30x44 px crop around a face of gdp.jpg: nothing at its own scale, the face at 2x."""
    full, main_only = analyzers
    crop = np.ascontiguousarray(read_rgb(GROUP_PHOTOS["gdp.jpg"])[275:319, 0:30])
    (alone,) = main_only.analyze([encode(crop)], DEFAULT)
    assert not alone.faces
    (result,) = full.analyze([encode(crop)], DEFAULT)
    assert len(result.faces) == 1 and result.faces[0].vec is not None
    face_box = np.array([1, 4, 28, 40], np.float32)  # SCRFD's box in the whole photo, shifted
    assert box_iou(_boxes(result), face_box[None]).max() >= 0.5


def test_a_tilted_face_in_a_small_photo_is_found_on_turned_copies(
    analyzers: tuple[FaceAnalyzer, FaceAnalyzer],
) -> None:
    """t1.jpg's first face turned 80 degrees in a 96 px crop: missed at its own scale and at
    twice it, found on the copies turned 45 degrees either way (one call of two canvases), then
    detected again upright in its 320 px window, with its landmarks where the turned face's are
    and the upright face's embedding."""
    full, _ = analyzers
    photo = read_rgb(GROUP_PHOTOS["t1.jpg"])
    face_box = np.array(T1_FACE_BOX, np.float32)
    (group,) = full.analyze([encode(photo)], DEFAULT)
    upright = group.faces[int(box_iou(_boxes(group), face_box[None])[:, 0].argmax())]
    image, to_crop = tilted_crop(photo, face_box, -80, 96, 1.4)
    truth = np.array(upright.landmarks) @ to_crop[:, :2].T + to_crop[:, 2]
    with _recording(full) as (recorded, recording):
        (result,) = recorded.analyze([encode(image, ".png")], DEFAULT)
    assert recording.shapes == [(96, 96, 3), (192, 192, 3), (192, 192, 3), (192, 192, 3), (320, 320, 3)]
    assert len(result.faces) == 1
    (found,) = result.faces
    side = max(found.bbox[2] - found.bbox[0], found.bbox[3] - found.bbox[1])
    assert np.linalg.norm(np.array(found.landmarks) - truth, axis=1).mean() < 0.08 * side
    assert found.vec is not None and upright.vec is not None
    similarity = np.frombuffer(found.vec, np.float32) @ np.frombuffer(upright.vec, np.float32)
    assert similarity > 0.8


# (crop side px, crop side / face side, detector inputs): a face filling its crop (its box covers
# half of it) is set upright in its 320 px window alone; where it leaves room for more faces, the
# crop turned upright is detected first, and then shows no more faces than the one found.
LYING_CROPS = [
    (300, 1.4, [(320, 320, 3), (320, 320, 3)]),
    (640, 3.0, [(640, 640, 3), (640, 640, 3), (320, 320, 3)]),
]


@pytest.mark.parametrize(("side", "margin", "calls"), LYING_CROPS)
def test_a_face_lying_on_its_side_is_detected_again_upright(
    side: int, margin: float, calls: list[tuple[int, int, int]], analyzers: tuple[FaceAnalyzer, FaceAnalyzer]
) -> None:
    """t1.jpg's first face turned 90 degrees clockwise in a crop: the face SCRFD finds lying on its
    side (its landmarks say so) is detected again in its 320 px window turned upright; its
    landmarks are then where the turned face's are, and it embeds as the upright face."""
    full, _ = analyzers
    photo = read_rgb(GROUP_PHOTOS["t1.jpg"])
    face_box = np.array(T1_FACE_BOX, np.float32)
    (group,) = full.analyze([encode(photo)], DEFAULT)
    upright = group.faces[int(box_iou(_boxes(group), face_box[None])[:, 0].argmax())]
    image, to_crop = tilted_crop(photo, face_box, -90, side, margin)
    truth = np.array(upright.landmarks) @ to_crop[:, :2].T + to_crop[:, 2]
    with _recording(full) as (recorded, recording):
        (lying,) = recorded.analyze([encode(image, ".png")], DEFAULT)
    assert recording.shapes == calls
    (found,) = lying.faces
    face_side = max(found.bbox[2] - found.bbox[0], found.bbox[3] - found.bbox[1])
    assert np.linalg.norm(np.array(found.landmarks) - truth, axis=1).mean() < 0.05 * face_side
    assert found.vec is not None and upright.vec is not None
    assert np.frombuffer(found.vec, np.float32) @ np.frombuffer(upright.vec, np.float32) > 0.8


# The upright photo's box (x1, y1, x2, y2), w x h px, in the photo turned by np.rot90 (1: a
# quarter counter-clockwise: the top-right corner goes to the top-left; -1: clockwise).
TURNED_BOX = {
    1: lambda b, w, h: (b[1], w - b[2], b[3], w - b[0]),
    -1: lambda b, w, h: (h - b[3], b[0], h - b[1], b[2]),
}


@pytest.mark.parametrize("quarters", [1, -1])
def test_a_photo_on_its_side_is_detected_again_turned_upright(
    quarters: int, analyzers: tuple[FaceAnalyzer, FaceAnalyzer]
) -> None:
    """t1.jpg turned a quarter either way (no EXIF orientation to undo it): SCRFD finds 1 of its 6
    faces, lying; the photo turned upright shows all 6. Each comes back in the turned photo's px,
    on the upright photo's face turned the same way, with its embedding."""
    full, _ = analyzers
    photo = read_rgb(GROUP_PHOTOS["t1.jpg"])
    (upright,) = full.analyze([encode(photo)], DEFAULT)
    sideways = np.ascontiguousarray(np.rot90(photo, quarters))
    (as_it_is,) = full.models.detect(
        "scrfd", [letterbox(sideways, DEFAULT.max_size).canvas], DEFAULT.threshold
    )
    with _recording(full) as (recorded, recording):
        (result,) = recorded.analyze([encode(sideways)], DEFAULT)
    assert recording.shapes == [(640, 448, 3), (160, 128, 3), (448, 640, 3)]  # as it is, coarse, upright
    assert len(upright.faces) == 6 and len(as_it_is) == 1 and len(result.faces) == 6
    height, width = photo.shape[:2]
    expected = np.array(
        [TURNED_BOX[quarters](face.bbox, width, height) for face in upright.faces], np.float32
    )
    overlap = box_iou(expected, _boxes(result))
    matched = overlap.argmax(axis=1)
    assert sorted(matched.tolist()) == list(range(6)) and overlap.max(axis=1).min() > 0.9
    for face, index in zip(upright.faces, matched, strict=True):
        found = result.faces[int(index)]
        assert face.vec is not None and found.vec is not None
        assert np.frombuffer(face.vec, np.float32) @ np.frombuffer(found.vec, np.float32) > 0.95
    # A video's frames come upright (the container's rotation applied): not turned again.
    (frame,) = full.run_frames([sideways], DEFAULT)
    assert len(frame.faces) == 1


def test_a_face_upright_in_a_photo_on_its_side_is_kept_with_the_faces_turned_upright(
    analyzers: tuple[FaceAnalyzer, FaceAnalyzer],
) -> None:
    """gdp.jpg turned a quarter, with t1.jpg's first face pasted upright into its top-right
    corner: most faces found lie, so the photo is detected again turned upright (its 5 faces),
    and the pasted face, found as the photo is and by none of those, stays beside them."""
    full, _ = analyzers
    photo = np.ascontiguousarray(np.rot90(read_rgb(GROUP_PHOTOS["gdp.jpg"]), 1))
    x1, y1, x2, y2 = (int(v) for v in T1_FACE_BOX)
    left, top, right, bottom = x1 - 25, y1 - 30, x2 + 25, y2 + 20
    at_x = photo.shape[1] - (right - left)
    photo[: bottom - top, at_x:] = read_rgb(GROUP_PHOTOS["t1.jpg"])[top:bottom, left:right]
    pasted = np.array(T1_FACE_BOX, np.float32) + np.array([at_x - left, -top] * 2, np.float32)
    with _recording(full) as (recorded, recording):
        (result,) = recorded.analyze([encode(photo)], DEFAULT)
    assert recording.shapes[2] == (640, 512, 3)  # the photo turned upright
    assert len(result.faces) == 6
    assert box_iou(_boxes(result), pasted[None])[:, 0].max() > 0.7
