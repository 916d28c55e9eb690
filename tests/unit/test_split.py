"""A request split into jobs (shared/split.py): the parts and the merged answer."""

from __future__ import annotations

import pytest

from shared.contract import (
    AnalysisOptions,
    ExtractJob,
    ExtractResult,
    IngestedPhoto,
    IngestJob,
    IngestResult,
    ModelRef,
)
from shared.split import merge_results, split_job

MODEL = ModelRef("arcface", "arcface", "1", "MIT")


def _ingest(photos: int, data_count: int) -> IngestJob:
    images = [bytes([i]) for i in range(photos)]
    return IngestJob(images, "lib", [f"p{i}" for i in range(photos)], AnalysisOptions(), "r", data_count)


def test_an_ingest_splits_into_parts_in_request_order_with_their_own_data_count() -> None:
    parts = split_job(_ingest(7, data_count=5), 3)
    assert [p.images for p in parts if isinstance(p, IngestJob)] == [
        [b"\x00", b"\x01", b"\x02"],
        [b"\x03", b"\x04", b"\x05"],
        [b"\x06"],
    ]
    assert [p.photo_ids for p in parts if isinstance(p, IngestJob)] == [
        ["p0", "p1", "p2"],
        ["p3", "p4", "p5"],
        ["p6"],
    ]
    # images.data first, then the fetched images.urls: 5 data images are 3 + 2 + 0.
    assert [p.data_count for p in parts if isinstance(p, IngestJob)] == [3, 2, 0]
    assert all(p.collection == "lib" and p.request_id == "r" for p in parts if isinstance(p, IngestJob))


def test_a_job_that_fits_or_does_not_split_is_its_own_one_part() -> None:
    fits = _ingest(3, 3)
    assert split_job(fits, 3) == [fits]
    extract = ExtractJob([b"a"] * 20, AnalysisOptions(), "r")
    assert split_job(extract, 3) == [extract]


def test_the_parts_results_merge_in_their_order_with_their_worker_time_added() -> None:
    def part(ids: list[str], took: float) -> IngestResult:
        return IngestResult("lib", [IngestedPhoto(i, "ok") for i in ids], "w", took, MODEL)

    merged = merge_results([part(["a", "b"], 1.5), part(["c"], 2.0)])
    assert merged == part(["a", "b", "c"], 3.5)
    alone = part(["a"], 1.0)
    assert merge_results([alone]) == alone
    with pytest.raises(ValueError):
        merge_results([ExtractResult([], "w", 1.0, MODEL, MODEL)] * 2)
