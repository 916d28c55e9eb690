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


def code_bytes(vec: NDArray[np.float32]) -> bytes:
    """One vector's code as a store keeps it: its sign bits, packed."""
    return bytes(sign_bytes(vec)[0])


@dataclass(frozen=True, slots=True)
class GrowingCodes:
    """Faces' codes and their seqs, added to as faces are enrolled.

    ``appended`` writes past ``count`` into spare capacity (doubled when full, so an enroll between
    two searches copies nothing) and returns a new instance: the part an instance shows never
    changes, so one thread may scan it while another appends. Append only to the newest instance
    (the gallery's cache does, under its lock): an older one's spare capacity is the newer's rows."""

    seqs: NDArray[np.int64]  # (capacity,)
    codes: Codes  # (words, capacity)
    count: int = 0

    @classmethod
    def empty(cls, dimension: int) -> GrowingCodes:
        return cls(np.zeros(0, np.int64), np.zeros((-(-dimension // 64), 0), np.uint64))

    def appended(self, seqs: NDArray[np.int64], codes: Codes) -> GrowingCodes:
        end = self.count + len(seqs)
        grown_seqs, grown_codes = self.seqs, self.codes
        if end > len(self.seqs):
            capacity = max(end, 2 * len(self.seqs))
            grown_seqs = np.zeros(capacity, np.int64)
            grown_codes = np.zeros((codes.shape[0], capacity), np.uint64)
            grown_seqs[: self.count] = self.seqs[: self.count]
            grown_codes[:, : self.count] = self.codes[:, : self.count]
        grown_seqs[self.count : end] = seqs
        grown_codes[:, self.count : end] = codes
        return GrowingCodes(grown_seqs, grown_codes, end)

    def snapshot(self) -> tuple[NDArray[np.int64], Codes]:
        return self.seqs[: self.count], self.codes[:, : self.count]


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
