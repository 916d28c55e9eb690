"""pgvector's binary vector format, and the PostgreSQL connections that send it.

A vector travels as ``uint16 dimension, uint16 unused, big-endian float4s``: as a query parameter,
in a binary COPY and in a binary cursor's results, so no text is formatted or parsed on either side.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg.adapt import Dumper
from psycopg.pq import Format


class PackedVector(bytes):
    """A vector in pgvector's binary format: sent as a binary parameter of no declared type, which
    ``%s::vector`` makes the server read with pgvector's own decoder (no text to format or parse: a
    512-d text query cost about 1 ms more per ranking, docs/scaling.md). A binary COPY takes
    the same bytes."""


class _PackedVectorDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: PackedVector) -> bytes:
        return obj


def packed(vec: NDArray[np.float32]) -> PackedVector:
    """One vector (any shape: its values in order) in pgvector's binary format."""
    flat = np.asarray(vec, np.float32).ravel()
    return PackedVector(struct.pack(">HH", len(flat), 0) + flat.astype(">f4").tobytes())


def from_binary(vectors: Sequence[bytes]) -> NDArray[np.float32]:
    """Vectors in pgvector's binary format (a binary cursor's values) as float32 rows."""
    if not vectors:
        return np.zeros((0, 0), np.float32)
    data = np.frombuffer(b"".join(v[4:] for v in vectors), ">f4").reshape(len(vectors), -1)
    return data.astype(np.float32)


def connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit connection that sends ``PackedVector`` parameters in binary."""
    db = psycopg.connect(url, autocommit=True)
    db.adapters.register_dumper(PackedVector, _PackedVectorDumper)
    return db
