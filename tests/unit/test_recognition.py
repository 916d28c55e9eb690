"""The recognition rules without a server: names, best face per subject, the same-photo rule,
collection-limited API keys."""

from __future__ import annotations

import numpy as np
import pytest

from api.auth import ApiKeys
from shared.contract import RecognizerInfo
from shared.errors import RecognizerMismatch
from shared.gallery import check_recognizer
from shared.recognition import DEFAULT_THRESHOLDS, Match, best_per_subject, top_faces, valid_name
from worker.inference.registry import RECOGNIZERS
from worker.recognition import assign


def test_every_recognizer_has_a_measured_default_threshold() -> None:
    """bench/calibrate_recognition.py measured each (docs/calibration.md); none falls back."""
    assert set(DEFAULT_THRESHOLDS) == set(RECOGNIZERS)


def test_names_are_url_safe_and_bounded() -> None:
    assert valid_name("staff-2026.v1_a")
    for bad in ("", ".hidden", "a/b", "a b", "é", "x" * 129, "-lead"):
        assert not valid_name(bad), bad


def test_a_subject_scores_as_its_best_face_and_appears_once() -> None:
    ranked = [("alice", 0.9), ("alice", 0.8), ("bob", 0.7), ("carol", 0.1)]
    matches, enough = best_per_subject(ranked, 2)
    assert matches == [Match("alice", 0.9), Match("bob", 0.7)] and enough
    assert best_per_subject(ranked[:2], 2) == ([Match("alice", 0.9)], False)


def test_top_faces_is_exact_when_one_subject_owns_many_of_the_best_faces() -> None:
    similarities = np.array([0.99] * 50 + [0.5, 0.4], np.float32)
    subjects = ["alice"] * 50 + ["bob", "carol"]
    assert [m.subject for m in top_faces(similarities, subjects, 3)] == ["alice", "bob", "carol"]


def test_the_assignment_names_each_subject_once_per_photo() -> None:
    # Both faces look most like alice; the second is alice by more, the first is bob's next best.
    first = [Match("alice", 0.60), Match("bob", 0.55)]
    second = [Match("alice", 0.90), Match("bob", 0.10)]
    assert assign([first, second], 0.3) == [Match("bob", 0.55), Match("alice", 0.9)]


def test_faces_below_the_threshold_stay_unnamed() -> None:
    assert assign([[Match("alice", 0.2)], [Match("alice", 0.5)]], 0.3) == [None, Match("alice", 0.5)]
    assert assign([[Match("alice", 0.9)], [Match("alice", 0.8)]], 0.3) == [Match("alice", 0.9), None]


def test_an_api_key_can_be_limited_to_collections() -> None:
    keys = ApiKeys(["open-key", "shop-key shop1 shop2"])
    keys.check("shop-key")
    assert keys.may_use("shop-key", "shop1") and not keys.may_use("shop-key", "staff")
    assert keys.may_use("open-key", "staff")


def test_a_collection_refuses_another_recognizers_vectors_naming_both_and_the_way_out() -> None:
    stored = RecognizerInfo("arcface", "w600k_r50", "1", "research", 512)
    check_recognizer("staff", stored, RecognizerInfo("arcface", "w600k_r50", "1", "other terms", 512))
    with pytest.raises(RecognizerMismatch) as refused:
        check_recognizer("staff", stored, RecognizerInfo("dlib", "resnet", "19", "boost", 128))
    assert refused.value.code == "recognizer_mismatch"
    assert refused.value.message == (
        "collection 'staff' holds vectors of arcface (w600k_r50 1, 512-d), but the workers run "
        "dlib (resnet 19, 128-d): reindex the collection (POST /collections/staff/reindex) or run "
        "workers with its recognizer"
    )
