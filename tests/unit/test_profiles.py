"""Profiles and model lists in settings, the registry's integrity checks, the API's model check."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest

from api.availability import available, check_request
from api.schemas import ExtractRequest
from shared.contract import AnalysisOptions, ModelInfo, RecognizerInfo, WorkerInfo
from shared.errors import ModelNotLoaded
from shared.recognition import default_threshold
from shared.settings import PROFILES, Backend, ModelSelection, SettingsError, load_settings
from worker.inference.files import ModelFile, ModelIntegrityError, locate_all, read_model
from worker.inference.registry import (
    DETECTORS,
    MTCNN_NETS,
    RETINAFACE_MNET,
    ModelOpener,
    all_entries,
    check_profile,
    select,
)
from worker.inference.session import Device
from worker.models.postprocess import decode_prior_boxes, decode_prior_points, nms, prior_boxes


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_a_profile_gives_its_models_and_lists_replace_only_what_they_name(
    monkeypatch: pytest.MonkeyPatch, profile: str
) -> None:
    base = PROFILES[profile]
    monkeypatch.setenv("FACEREST_PROFILE", profile)
    assert load_settings().models() == base
    monkeypatch.setenv("FACEREST_DETECTORS", "mtcnn, retinaface")
    models = load_settings().models()
    assert models == ModelSelection(("mtcnn", "retinaface"), base.recognizer, base.attributes)
    monkeypatch.setenv("FACEREST_ATTRIBUTES", "")
    assert load_settings().models().attributes == ()


@pytest.mark.parametrize(
    ("variable", "value"),
    [("FACEREST_PROFILE", "commercial"), ("FACEREST_DETECTORS", "scrfd,scrfd")],
)
def test_bad_model_settings_fail_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_unknown_model_names_fail_worker_start_naming_the_variable_and_the_known_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cases = [
        ("FACEREST_DETECTORS", "scrfd,yolo", "known: scrfd, retinaface, mtcnn"),
        ("FACEREST_DETECTORS", "arcface", "'arcface' is a recognizer, not a detector"),
        ("FACEREST_RECOGNIZER", "facenet", "known: arcface, arcface_int8, dlib, sface"),
        ("FACEREST_ATTRIBUTES", "emotion", "known: genderage, landmarks106"),
    ]
    for variable, value, known in cases:
        with monkeypatch.context() as environment:
            environment.setenv(variable, value)
            settings = load_settings()  # names are the registry's to check, at worker start
            with pytest.raises(SettingsError, match=variable) as refused:
                select(settings)
        assert known in str(refused.value)


def test_mtcnn_without_pytorch_fails_worker_start_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lean install (make run) has no PyTorch: importing our MTCNN then fails as here.
    monkeypatch.setitem(sys.modules, "worker.models.mtcnn", None)
    opener = ModelOpener(Device("cpu"), 1, Backend.ONNXRUNTIME)
    with pytest.raises(SettingsError, match="PyTorch") as failure:
        DETECTORS["mtcnn"].build(opener)
    assert 'pip install -e ".[mtcnn]"' in str(failure.value)
    assert "make run MTCNN=1" in str(failure.value)


def test_permissive_profile_loads_only_commercially_usable_models() -> None:
    entries = select(load_settings(profile="permissive")).entries()
    assert entries and all(entry.commercial_use for entry in entries)
    with pytest.raises(SettingsError, match="scrfd"):
        select(load_settings(profile="permissive", detectors="scrfd"))
    with pytest.raises(SettingsError, match="landmarks106"):
        check_profile(load_settings(profile="permissive"), all_entries())


def test_the_permissive_profile_recognizes_with_sface_at_its_own_calibrated_threshold() -> None:
    # docs/calibration.md: at ArcFace's false-accept rate sface keeps 89.2 % of true pairs, dlib 39.1 %.
    selected = select(load_settings(profile="permissive"))
    assert selected.recognizer.key == "sface" and selected.recognizer.license == "Apache-2.0"
    assert [entry.key for entry in selected.detectors] == ["retinaface"]
    assert default_threshold("sface") == 0.497 and default_threshold("dlib") == 0.962
    assert select(load_settings(profile="permissive", recognizer="dlib")).recognizer.key == "dlib"


def test_every_registered_file_matches_its_sha256() -> None:
    for spec in (spec for entry in all_entries() for spec in entry.specs):
        if spec.symbol:
            assert len(read_model(spec)) > 1_000_000
        else:
            assert len(locate_all(spec)) == 1 + len(spec.extra_files)


def test_a_changed_model_fails_loudly() -> None:
    wrong = "0" * 64
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        read_model(dataclasses.replace(RETINAFACE_MNET, sha256=wrong))
    changed_extra = (ModelFile(MTCNN_NETS.extra_files[0].resource, wrong),)
    with pytest.raises(ModelIntegrityError, match="rnet"):
        locate_all(dataclasses.replace(MTCNN_NETS, extra_files=changed_extra))
    with pytest.raises(ModelIntegrityError, match="not installed"):
        read_model(dataclasses.replace(RETINAFACE_MNET, package="no_such_package"))


def test_return_landmarks_accepts_bool_or_106() -> None:
    images = {"data": ["eA=="]}
    dense = ExtractRequest.model_validate({"images": images, "return_landmarks": "106"}).options(10)
    assert dense.return_landmarks and dense.return_landmarks106
    plain = ExtractRequest.model_validate({"images": images, "return_landmarks": True}).options(10)
    assert plain.return_landmarks and not plain.return_landmarks106
    with pytest.raises(ValueError, match="return_landmarks"):
        ExtractRequest.model_validate({"images": images, "return_landmarks": "68"})
    with pytest.raises(ValueError, match="detector"):
        ExtractRequest.model_validate({"images": images, "detector": "Yolo; rm"})


def _worker(
    name: str, detectors: list[str], attributes: list[str], recognizer: str = "arcface"
) -> WorkerInfo:
    model = ModelInfo(name, recognizer, "recognizer", "1", "package", "0" * 64, "MIT", True, "test")
    return WorkerInfo(
        name=name,
        device="cpu",
        pid=1,
        concurrency=1,
        started=0.0,
        profile="insightface",
        models=[model],
        detectors=detectors,
        recognizer=RecognizerInfo(recognizer, f"{recognizer}-net", "1", "MIT", 512),
        attributes=attributes,
    )


def test_api_refuses_models_not_every_worker_has_naming_the_available_ones() -> None:
    workers = [
        _worker("a", ["scrfd", "retinaface"], ["genderage"]),
        _worker("b", ["retinaface", "scrfd", "mtcnn"], ["genderage", "landmarks106"], recognizer="dlib"),
    ]
    assert available(workers).detectors == ["scrfd", "retinaface"]
    assert [r.key for r in available(workers).recognizers] == ["arcface", "dlib"]
    check_request(AnalysisOptions(detector="retinaface", extract_ga=True), workers)
    with pytest.raises(ModelNotLoaded, match=r"mtcnn.*available: scrfd, retinaface") as refused:
        check_request(AnalysisOptions(detector="mtcnn"), workers)
    assert refused.value.available == ["scrfd", "retinaface"]
    with pytest.raises(ModelNotLoaded, match=r"'yolo'.*available: scrfd, retinaface"):
        check_request(AnalysisOptions(detector="yolo"), workers)
    with pytest.raises(ModelNotLoaded, match="landmarks106"):
        check_request(AnalysisOptions(return_landmarks106=True), workers)


def test_prior_boxes_decode_to_the_prior_itself_at_zero_offsets() -> None:
    priors = prior_boxes(2, 3, 16, (16, 32))
    assert priors.shape == (2 * 3 * 2, 4)
    # Row-major cells, both sizes per cell, centred in the cell.
    np.testing.assert_allclose(priors[:4], [[8, 8, 16, 16], [8, 8, 32, 32], [24, 8, 16, 16], [24, 8, 32, 32]])
    boxes = decode_prior_boxes(priors, np.zeros((len(priors), 4), np.float32), (0.1, 0.2))
    np.testing.assert_allclose(boxes[1], [8 - 16, 8 - 16, 8 + 16, 8 + 16])
    shifted = decode_prior_points(priors[:1], np.full((1, 10), 1.0, np.float32), 0.1)
    np.testing.assert_allclose(shifted[0], np.full((5, 2), 8 + 1.6), rtol=1e-6)


def test_min_overlap_nms_removes_a_box_inside_a_larger_one() -> None:
    boxes = np.array([[0, 0, 100, 100], [10, 10, 40, 40]], np.float32)
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 0.7).tolist() == [0, 1]
    assert nms(boxes, scores, 0.7, overlap="min").tolist() == [0]
