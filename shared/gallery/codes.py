"""Sign-bit codes: the first stage of a two-stage search (bench/binary_prefilter.py measured it).

A vector's code is the sign of each component, one bit each (512-d: 64 bytes). The Hamming
distance between two codes ranks stored faces roughly as cosine does, at a few ns per face; the
nearest few hundred are then re-ranked exactly on their float vectors.

Codes are kept word-major: an array of shape (words, faces) of uint64, so word k of every code is
contiguous and each step of ``hamming`` streams through memory.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

BLOCK = 1 << 15  # codes per step: the step's temporaries stay in the CPU's cache

Codes = NDArray[np.uint64]  # (words, faces)


def sign_bytes(vectors: NDArray[np.float32]) -> NDArray[np.uint8]:
    """Each row's sign bits, packed: ceil(dimension / 8) bytes per row (what the store keeps)."""
    packed: NDArray[np.uint8] = np.packbits(np.atleast_2d(vectors) > 0, axis=1)
    return packed


def words(packed: NDArray[np.uint8]) -> Codes:
    """Packed rows (faces, bytes) as word-major uint64 codes; zero-padded to whole words, which
    adds nothing to any distance."""
    rows, width = packed.shape
    padded = np.zeros((rows, -(-width // 8) * 8), np.uint8)
    padded[:, :width] = packed
    return np.ascontiguousarray(padded.view(np.uint64).T)


def sign_codes(vectors: NDArray[np.float32]) -> Codes:
    return words(sign_bytes(vectors))


def hamming(codes: Codes, query: NDArray[np.uint64]) -> NDArray[np.uint16]:
    """The Hamming distance of ``query`` (one code: its words) to every code."""
    count = codes.shape[1]
    distances = np.zeros(count, np.uint16)
    word = np.empty(BLOCK, np.uint64)
    bits = np.empty(BLOCK, np.uint8)
    for start in range(0, count, BLOCK):
        n = min(BLOCK, count - start)
        block = distances[start : start + n]
        for k in range(codes.shape[0]):
            np.bitwise_xor(codes[k, start : start + n], query[k], out=word[:n])
            np.bitwise_count(word[:n], out=bits[:n])
            block += bits[:n]
    return distances


def nearest(distances: NDArray[np.uint16], count: int) -> NDArray[np.intp]:
    """The indices of the ``count`` smallest distances and of every one tied with the last of
    them (so at least ``count``, or all): a histogram finds the cut-off distance in one pass,
    where a partial sort would cost several."""
    if count >= len(distances):
        return np.arange(len(distances))
    within = int(np.searchsorted(np.cumsum(np.bincount(distances)), count))
    return np.flatnonzero(distances <= within)
