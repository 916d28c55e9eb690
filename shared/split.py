"""One request as several jobs: how a job splits into children (each its own queue message, so
that several workers take them at once) and how the children's results merge back into the one
result the request answers with. The store keeps the parent and its children (shared/jobs.py).

Only an ingest splits today (``ingest_job_photos`` photos per child). The mechanism is general:
any kind whose images are independent of each other could split the same way (extract,
recognize, enroll: their results are per image or per face, in request order), with one
``case`` here for the split and one for the merge.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from shared.contract import IngestJob, IngestResult, Job, JobResult


def split_job(job: Job, photos_per_job: int) -> list[Job]:
    """``job`` as children of at most ``photos_per_job`` images each, in request order; [job]
    when it fits in one or its kind does not split."""
    match job:
        case IngestJob() if len(job.images) > photos_per_job:
            return [
                msgspec.structs.replace(
                    job,
                    images=job.images[start : start + photos_per_job],
                    photo_ids=job.photo_ids[start : start + photos_per_job],
                    # images.data come first, then images.urls: the child's share of the data.
                    data_count=min(max(job.data_count - start, 0), photos_per_job),
                )
                for start in range(0, len(job.images), photos_per_job)
            ]
        case _:
            return [job]


def merge_results(results: Sequence[JobResult]) -> JobResult:
    """The result of a split request: its children's, in request order (what one job would have
    answered). ``took_ms`` is the children's worker time added up."""
    first = results[0]
    if len(results) == 1:
        return first
    match first:
        case IngestResult():
            ingests = [result for result in results if isinstance(result, IngestResult)]
            if len(ingests) != len(results):
                raise ValueError("a split ingest's children answered with another kind of result")
            return msgspec.structs.replace(
                first,
                photos=[photo for result in ingests for photo in result.photos],
                took_ms=round(sum(result.took_ms for result in ingests), 3),
            )
        case _:
            raise ValueError(f"{type(first).__name__} is not a kind of job that splits")
