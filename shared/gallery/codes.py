"""Sign-bit codes: the first stage of a two-stage search (measured in docs/scaling.md).

A vector's code is the sign of each component, one bit each (512-d: 64 bytes). The Hamming
distance between two codes ranks stored faces roughly as cosine does, at a few ns per face; the
nearest few hundred are then re-ranked exactly on their float vectors.

Codes are kept word-major: an array of shape (words, faces) of uint64, so word k of every code is
contiguous and each step of a scan streams through memory. A scan can be split over threads:
numpy's ufuncs release the GIL, and each thread fills its own slice of the distances.
"""

from __future__ import annotations

import itertools
from concurrent.futures import Executor
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Distances:
    """A query's Hamming distance to every code, and how many codes lie at each distance."""

    values: NDArray[np.uint16]
    histogram: NDArray[np.int64]

    def nearest(self, count: int) -> NDArray[np.intp]:
        """The indices of the ``count`` nearest codes and of every one tied with the last of them
        (so at least ``count``, or all): the histogram gives the cut-off distance, where a partial
        sort would take several passes."""
        if count >= len(self.values):
            return np.arange(len(self.values))
        within = int(np.searchsorted(np.cumsum(self.histogram), count))
        return np.flatnonzero(self.values <= within)


def hamming(
    codes: Codes, query: NDArray[np.uint64], pool: Executor | None = None, parts: int = 1
) -> Distances:
    """The Hamming distance of ``query`` (one code: its words) to every code; with a ``pool``,
    computed in ``parts`` slices of whole blocks at once."""
    count = codes.shape[1]
    values = np.zeros(count, np.uint16)
    blocks = -(-count // BLOCK)
    parts = max(1, min(parts, blocks))
    bounds = [min(count, BLOCK * (blocks * i // parts)) for i in range(parts + 1)]
    slices = list(itertools.pairwise(bounds))
    if pool is None or parts == 1:
        histograms = [_scan(codes, query, values, start, stop) for start, stop in slices]
    else:
        futures = [pool.submit(_scan, codes, query, values, start, stop) for start, stop in slices]
        histograms = [future.result() for future in futures]
    return Distances(values, np.sum(histograms, axis=0))


def _scan(
    codes: Codes, query: NDArray[np.uint64], values: NDArray[np.uint16], start: int, stop: int
) -> NDArray[np.int64]:
    """Fill ``values[start:stop]``, block by block; the histogram of those distances."""
    word = np.empty(BLOCK, np.uint64)
    bits = np.empty(BLOCK, np.uint8)
    histogram = np.zeros(codes.shape[0] * 64 + 1, np.int64)
    for begin in range(start, stop, BLOCK):
        n = min(BLOCK, stop - begin)
        block = values[begin : begin + n]
        for k in range(codes.shape[0]):
            np.bitwise_xor(codes[k, begin : begin + n], query[k], out=word[:n])
            np.bitwise_count(word[:n], out=bits[:n])
            block += bits[:n]
        histogram += np.bincount(block, minlength=len(histogram))
    return histogram
