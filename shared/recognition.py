"""Recognition rules both sides share: names, default thresholds, scores and the same-photo rule.

Similarities are cosines of L2-normalised embeddings (-1 ... 1). A subject scores as its best
enrolled face (docs/recognition.md says why). In one photo two faces never get the same subject:
worker/recognition.py's ``assign`` picks the best overall assignment, not each face's independent argmax.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import MappingProxyType

import numpy as np
from numpy.typing import NDArray

# Collection and subject names: URL-safe without escaping, no path separators, bounded.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
NAME_RULE = "1 to 128 characters: letters, digits, '_', '.', '-', starting with a letter or digit"
# Face ids are the gallery's (uuid4 hex, shared/gallery/). Checked before the gallery is asked, so
# that no id can be a dot segment or carry a NUL (which PostgreSQL refuses with an error).
FACE_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
FACE_ID_RULE = "32 lowercase hex digits"

# The default open-set threshold per recognizer key (cosine similarity): below it a face is
# "nobody we know". Measured on CFP's frontal photos (python -m bench.calibrate_recognition,
# docs/calibration.md): each is the lowest value at which about 1 in a million comparisons of two
# different people is accepted (about 1 % of unknown queries against 10,000 people). True-accept
# rate there: arcface 94.8 %, arcface_int8 94.8 %, sface 89.2 %, dlib 39.1 % (sface 0.396 keeps 96.9 %
# and dlib 0.943 81 % for galleries of ~100 people). Requests override with "threshold".
DEFAULT_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"arcface": 0.392, "arcface_int8": 0.390, "sface": 0.497, "dlib": 0.962}
)
FALLBACK_THRESHOLD = 0.5  # a recognizer not in the table (none: tests/unit/test_recognition.py)

DEFAULT_LIMIT = 3  # top-k matches per face
MAX_LIMIT = 100


# The threshold per recognizer key at a per-comparison FAR of 1e-3 (docs/calibration.md's
# operating points, same run as DEFAULT_THRESHOLDS): 1 impostor pair in 1,000 scores above it.
LOOSE_THRESHOLDS: Mapping[str, float] = MappingProxyType(
    {"arcface": 0.243, "arcface_int8": 0.243, "sface": 0.335, "dlib": 0.927}
)

# The calibrated confidence (0 ... 1) that foreign protocols report instead of a cosine (api/compat/):
# their clients compare it with fixed lines (DeepStack's recognize 0.67, deepstack-python's 0.45,
# Double Take's "unknown" 40 and "match" 60 of 100). Anchors: a similarity of 0 (unrelated faces)
# is 0, the 1e-3 FAR point is STRANGER_CONFIDENCE (under the lowest line: 999 of 1,000 impostor
# pairs stay below it), the default open-set threshold (FAR 1e-6) is MATCH_CONFIDENCE (DeepStack's
# own default line, so its default means ours), and 1 is 1; linear in between.
STRANGER_CONFIDENCE = 0.40
MATCH_CONFIDENCE = 0.67


def default_threshold(recognizer_key: str) -> float:
    return DEFAULT_THRESHOLDS.get(recognizer_key, FALLBACK_THRESHOLD)


def _confidence_anchors(recognizer_key: str) -> tuple[tuple[float, float], ...]:
    """(similarity, confidence) points of the mapping, increasing in both."""
    match = default_threshold(recognizer_key)
    # A recognizer without a measured 1e-3 point: halfway to the threshold (none: the fallback).
    loose = LOOSE_THRESHOLDS.get(recognizer_key, match / 2)
    return ((0.0, 0.0), (loose, STRANGER_CONFIDENCE), (match, MATCH_CONFIDENCE), (1.0, 1.0))


def confidence(similarity: float, recognizer_key: str) -> float:
    """The calibrated confidence of a cosine similarity (STRANGER_CONFIDENCE says how it is anchored)."""
    points = _confidence_anchors(recognizer_key)
    if similarity <= 0.0:
        return 0.0
    for (s0, c0), (s1, c1) in pairwise(points):
        if similarity <= s1:
            return round(c0 + (c1 - c0) * (similarity - s0) / (s1 - s0), 5)
    return 1.0


def similarity_for(wanted: float, recognizer_key: str) -> float:
    """The similarity whose confidence is ``wanted``: a client's confidence line as our threshold."""
    points = _confidence_anchors(recognizer_key)
    if wanted <= 0.0:
        return -1.0  # every face: cosines go down to -1
    for (s0, c0), (s1, c1) in pairwise(points):
        if wanted <= c1:
            return s0 + (s1 - s0) * (wanted - c0) / (c1 - c0)
    return 1.0


def valid_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def valid_face_id(face_id: str) -> bool:
    return FACE_ID_PATTERN.fullmatch(face_id) is not None


@dataclass(frozen=True, slots=True)
class Match:
    subject: str
    similarity: float


def best_per_subject(ranked: Iterable[tuple[str, float]], limit: int) -> tuple[list[Match], bool]:
    """The first ``limit`` distinct subjects of faces ranked by similarity, best first, each with
    its best face's similarity; and whether ``limit`` subjects were found (else: rank more faces)."""
    seen: dict[str, float] = {}
    for subject, similarity in ranked:
        if subject not in seen:
            seen[subject] = similarity
            if len(seen) == limit:
                break
    return [Match(subject, round(sim, 5)) for subject, sim in seen.items()], len(seen) >= limit


def top_faces(similarities: NDArray[np.float32], subjects: Sequence[str], limit: int) -> list[Match]:
    """Exact top-``limit`` subjects by best-face similarity from one query's face similarities."""
    count = len(similarities)
    want = min(count, max(limit * 4, 16))
    while True:
        part = np.argpartition(-similarities, want - 1)[:want] if want < count else np.arange(count)
        order = part[np.argsort(-similarities[part], kind="stable")]
        matches, enough = best_per_subject(((subjects[i], float(similarities[i])) for i in order), limit)
        if enough or want >= count:
            return matches
        want = min(count, want * 4)


def image_digest(data: bytes) -> str:
    """What makes an enroll idempotent: the same image bytes for the same subject."""
    return hashlib.sha256(data).hexdigest()
