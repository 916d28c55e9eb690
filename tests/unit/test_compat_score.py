"""The one mapping from cosine similarity to the confidence DeepStack and CompreFace clients read
(shared/recognition.py confidence), against its calibration data (docs/calibration.md)."""

from __future__ import annotations

import pytest

from shared.recognition import (
    DEFAULT_THRESHOLDS,
    LOOSE_THRESHOLDS,
    MATCH_CONFIDENCE,
    STRANGER_CONFIDENCE,
    confidence,
    similarity_for,
)

# The clients' default lines: Double Take's unknown (40) and match (60) of 100, deepstack-python's
# 0.45, DeepStack recognize's 0.67, Home Assistant deepstack_face's 80 %.
CLIENT_LINES = (0.40, 0.45, 0.60, 0.67, 0.80)


@pytest.mark.parametrize("key", sorted(DEFAULT_THRESHOLDS))
def test_the_calibrated_points_map_to_the_named_confidences(key: str) -> None:
    assert confidence(DEFAULT_THRESHOLDS[key], key) == MATCH_CONFIDENCE == 0.67
    assert confidence(LOOSE_THRESHOLDS[key], key) == STRANGER_CONFIDENCE == 0.40
    assert confidence(1.0, key) == 1.0
    assert confidence(0.0, key) == confidence(-0.3, key) == 0.0


@pytest.mark.parametrize("key", sorted(DEFAULT_THRESHOLDS))
def test_confidence_rises_with_similarity_and_similarity_for_inverts_it(key: str) -> None:
    grid = [i / 1000 for i in range(-1000, 1001)]
    values = [confidence(s, key) for s in grid]
    assert values == sorted(values)
    for line in CLIENT_LINES:
        assert confidence(similarity_for(line, key), key) == pytest.approx(line, abs=1e-5)


def test_arcface_lines_sit_on_the_calibration_table() -> None:
    # docs/calibration.md, arcface: FAR 1e-3 at 0.243, 1e-5 at 0.349, 1e-6 at 0.392. Double
    # Take's match line (60) falls just past the 1e-5 point (TAR 97 %), its unknown line (40) at
    # 1e-3: 999 of 1,000 impostor pairs stay under it.
    assert similarity_for(0.40, "arcface") == pytest.approx(0.243)
    assert 0.349 < similarity_for(0.60, "arcface") < 0.392
    assert similarity_for(0.67, "arcface") == pytest.approx(0.392)
    # A plain cosine read as a confidence would call strangers matches: 0.392 is already a match.
    assert confidence(0.392, "arcface") > 0.392


def test_an_unmeasured_recognizer_falls_back_to_the_fallback_threshold() -> None:
    assert confidence(0.5, "unknown-model") == MATCH_CONFIDENCE
    assert confidence(0.25, "unknown-model") == STRANGER_CONFIDENCE
