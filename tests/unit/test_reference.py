"""Our SCRFD and ArcFace pre/post-processing reproduce insightface 0.7.3 on the same files."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from insightface.model_zoo.arcface_onnx import ArcFaceONNX
from insightface.model_zoo.scrfd import SCRFD as ReferenceSCRFD
from numpy.typing import NDArray

from shared.contract import AnalysisOptions
from shared.settings import load_settings
from testkit.photos import GROUP_PHOTOS, read_rgb
from tests.faces import FACES_IN
from worker.analyzer import FaceAnalyzer
from worker.imaging.align import ARCFACE_SIZE, arcface_template, warp_to_template
from worker.imaging.resize import Letterbox
from worker.inference.files import locate
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M
from worker.inference.session import Device
from worker.loader import load_analyzer
from worker.models.postprocess import box_iou

REFERENCE_SIZE = (640, 640)
# Every test here loads the real SCRFD and ArcFace (and most the reference too): seconds each.
pytestmark = pytest.mark.slow


def reference_letterbox(image: NDArray[np.uint8], size: tuple[int, int]) -> Letterbox:
    """insightface's sizing: fit into exactly ``size`` (w, h), upscaling small images."""
    height, width = image.shape[:2]
    target_w, target_h = size
    if height / width > target_h / target_w:
        new_h, new_w = target_h, int(target_h / (height / width))
    else:
        new_w, new_h = target_w, int(target_w * (height / width))
    canvas = np.zeros((target_h, target_w, 3), np.uint8)
    canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
    return Letterbox(canvas, new_h / height, new_w, new_h)


@pytest.fixture(scope="module")
def analyzer() -> FaceAnalyzer:
    # The models insightface 0.7.3 runs: SCRFD and ArcFace, whatever the profile's default.
    return load_analyzer(
        load_settings(profile="insightface", detectors="scrfd", recognizer="arcface"), Device("cpu")
    )


@pytest.fixture(scope="module")
def reference() -> tuple[ReferenceSCRFD, ArcFaceONNX]:
    detector = ReferenceSCRFD(model_file=str(locate(SCRFD_500M)))
    detector.prepare(-1, input_size=REFERENCE_SIZE, det_thresh=0.5)
    recognizer = ArcFaceONNX(model_file=str(locate(ARCFACE_MBF)))
    recognizer.prepare(-1)
    return detector, recognizer


@pytest.mark.parametrize("photo", sorted(GROUP_PHOTOS))
def test_detections_and_embeddings_match_insightface(
    photo: str, analyzer: FaceAnalyzer, reference: tuple[ReferenceSCRFD, ArcFaceONNX]
) -> None:
    ref_detector, ref_recognizer = reference
    rgb = read_rgb(GROUP_PHOTOS[photo])
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ref_boxes, ref_kps = ref_detector.detect(bgr, input_size=REFERENCE_SIZE)
    assert len(ref_boxes) > 0

    boxed = reference_letterbox(rgb, REFERENCE_SIZE)
    (in_canvas,) = analyzer.loaded.detectors["scrfd"].detect_batch([boxed.canvas], [0.5])
    ours = in_canvas.scaled(1.0 / boxed.scale)

    assert len(ours) == len(ref_boxes)
    iou = box_iou(ours.boxes, ref_boxes[:, :4])
    assert np.all(iou.diagonal() >= 0.99), iou.diagonal()
    np.testing.assert_allclose(ours.scores, ref_boxes[:, 4], atol=1e-4)
    np.testing.assert_allclose(ours.keypoints, ref_kps, atol=0.5)

    template = arcface_template()
    crops = np.stack([warp_to_template(rgb, points, template, ARCFACE_SIZE) for points in ours.keypoints])
    embeddings = analyzer.loaded.recognizer.embed(crops)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    for embedding, points in zip(embeddings, ref_kps, strict=True):
        from insightface.utils import face_align

        ref_crop = face_align.norm_crop(bgr, landmark=points, image_size=112)
        ref_vec = ref_recognizer.get_feat(ref_crop)[0]
        cosine = float(embedding @ (ref_vec / np.linalg.norm(ref_vec)))
        assert cosine >= 0.999, cosine


def test_static_shapes_give_the_same_faces(analyzer: FaceAnalyzer) -> None:
    """The GPU shape policy (full canvases, padded face batches) changes no result."""
    from dataclasses import replace

    from worker.batched import BatchedModels, BatchLimits

    static = FaceAnalyzer(
        BatchedModels(analyzer.loaded, replace(BatchLimits(), static_shapes=True)), 40_000_000
    )
    photos = [GROUP_PHOTOS[name].read_bytes() for name in ("t1.jpg", "gdp.jpg", "yaoming.jpg")]
    # 0.6: a padded canvas moves low-scored boxes most (gdp.jpg at 1280 px has a sixth "face"
    # at 0.50-0.51 whose box moves to IoU 0.95).
    options = AnalysisOptions(max_size=(1280, 1280), threshold=0.6)
    for plain, padded in zip(analyzer.analyze(photos, options), static.analyze(photos, options), strict=True):
        plain_faces, padded_faces = plain.faces, padded.faces
        assert len(plain_faces) == len(padded_faces) > 0
        iou = box_iou(np.array([f.bbox for f in plain_faces]), np.array([f.bbox for f in padded_faces]))
        assert iou.diagonal().min() >= 0.99
        for a, b in zip(plain_faces, padded_faces, strict=True):
            assert a.vec is not None and b.vec is not None
            cosine = float(np.frombuffer(a.vec, np.float32) @ np.frombuffer(b.vec, np.float32))
            assert cosine >= 0.999
    static.close()


def test_large_photo_decoded_reduced_gives_the_faces_of_the_small_one(analyzer: FaceAnalyzer) -> None:
    """t1.jpg blown up 5x (6400x4430, 28 MP): asked for faces of at least 224 px, the worker
    decodes it at half size, yet finds the six faces of the small photo, in full-size
    coordinates, with the same identities."""
    from testkit.photos import encode
    from worker.imaging.decode import decode_image
    from worker.pipeline import decode_scale

    small = read_rgb(GROUP_PHOTOS["t1.jpg"])
    big = encode(
        np.asarray(
            cv2.resize(small, (small.shape[1] * 5, small.shape[0] * 5), interpolation=cv2.INTER_CUBIC),
            np.uint8,
        )
    )
    options = AnalysisOptions(min_face_size=224)
    rule = decode_scale(options, analyzer.loaded.recognizer.input_size)
    assert decode_image(big, 40_000_000, rule).pixels.shape[:2] == (2215, 3200)
    # Without min_face_size the smallest face SCRFD finds at 640 px needs every pixel.
    assert decode_image(big, 40_000_000, decode_scale(AnalysisOptions(), 112)).scale == 1.0

    (small_record,) = analyzer.analyze([encode(small)], AnalysisOptions())
    (big_record,) = analyzer.analyze([big], options)
    assert big_record.size == (6400, 4430)
    small_faces, big_faces = small_record.faces, big_record.faces
    assert len(big_faces) == len(small_faces) == FACES_IN["t1.jpg"]
    iou = box_iou(np.array([f.bbox for f in big_faces]), np.array([f.bbox for f in small_faces]) * 5)
    assert iou.max(axis=1).min() >= 0.9
    for face, index in zip(big_faces, iou.argmax(axis=1), strict=True):
        twin = small_faces[index]
        assert face.vec is not None and twin.vec is not None
        cosine = float(np.frombuffer(face.vec, np.float32) @ np.frombuffer(twin.vec, np.float32))
        assert cosine >= 0.95, cosine


def test_photo_over_the_canvas_cap_gives_the_faces_of_the_small_one_in_full_size_px(
    analyzer: FaceAnalyzer,
) -> None:
    """t1.jpg blown up 4x (5120x3544, 18 MP) with max_size 0: the detector's canvas is scaled
    down to FACEREST_MAX_DETECT_PIXELS, yet the six faces of the small photo come back, in
    full-size coordinates (the small photo's boxes times 4), with the same identities."""
    import msgspec

    from testkit.coarse import recorded
    from testkit.photos import encode

    cap = load_settings().max_detect_pixels
    assert analyzer.models.limits.max_detect_pixels == cap
    small = read_rgb(GROUP_PHOTOS["t1.jpg"])
    size = (small.shape[1] * 4, small.shape[0] * 4)
    assert size[0] * size[1] > 2 * cap
    big = encode(np.asarray(cv2.resize(small, size, interpolation=cv2.INTER_CUBIC), np.uint8))
    models, recording = recorded(analyzer.models, "scrfd")
    capped = FaceAnalyzer(models, 40_000_000)

    # 0.6: at 0.5 the 3488 px canvas also holds a 0.52 "face" of 43 px the small photo lacks.
    options = AnalysisOptions(return_landmarks=True, threshold=0.6)
    (small_record,) = analyzer.analyze([encode(small)], options)
    (big_record,) = capped.analyze([big], msgspec.structs.replace(options, max_size=(0, 0)))
    capped.close()
    # The main canvas, then the coarse passes for faces filling the photo, each 4x smaller.
    (height, width, _), *coarse = recording.shapes
    assert (width - 31) * (height - 31) <= cap  # the canvas, less its padding to 32
    assert [shape[1] for shape in coarse] == [896, 224]
    assert big_record.size == size
    # The same photo with max_size set to that canvas by hand: the same faces.
    (by_hand,) = analyzer.analyze([big], msgspec.structs.replace(options, max_size=(width, height)))
    small_faces, big_faces = small_record.faces, big_record.faces
    assert len(big_faces) == len(small_faces) == len(by_hand.faces) == FACES_IN["t1.jpg"]
    same = box_iou(np.array([f.bbox for f in big_faces]), np.array([f.bbox for f in by_hand.faces]))
    assert same.diagonal().min() >= 0.99
    # Against the small photo times 4: the detector saw these faces 2.7x larger in px than in
    # the small photo's 640 px canvas, which moves SCRFD's boxes and points a little (up to 5 %
    # of the face's width); a wrong frame would move them by the face's size or more.
    iou = box_iou(np.array([f.bbox for f in big_faces]), np.array([f.bbox for f in small_faces]) * 4)
    assert iou.max(axis=1).min() >= 0.85
    for face, index in zip(big_faces, iou.argmax(axis=1), strict=True):
        twin = small_faces[index]
        shift = np.linalg.norm(np.array(face.landmarks) - np.array(twin.landmarks) * 4, axis=1)
        assert shift.max() < 0.1 * (face.bbox[2] - face.bbox[0])
        assert face.vec is not None and twin.vec is not None
        cosine = float(np.frombuffer(face.vec, np.float32) @ np.frombuffer(twin.vec, np.float32))
        others = [f for f in small_faces if f is not twin and f.vec is not None]
        best_other = max(
            float(np.frombuffer(face.vec, np.float32) @ np.frombuffer(o.vec or b"", np.float32))
            for o in others
        )
        assert cosine >= 0.9 and best_other < 0.5, (cosine, best_other)
