"""shared/contract.py across versions: what a rolling upgrade's mixed API and workers decode."""

from __future__ import annotations

import msgspec

from shared import contract


def test_video_fields_no_longer_read_are_still_written_and_may_be_left_out() -> None:
    job = contract.VideoJob(3, 2.0, "staff", None, False, "r", duration_s=6.0, frames=12)
    # Written: the previous version requires them to decode this version's jobs and results.
    written = msgspec.msgpack.decode(contract.encode(job))
    assert (written["duration_s"], written["frames"]) == (6.0, 12)
    result = contract.VideoResult("v", [], 3, 12, 6.0, "staff", False, "w", 1.0, threshold=0.4)
    assert msgspec.msgpack.decode(contract.encode(result))["threshold"] == 0.4
    # Left out (what the next version may write): decoded with their defaults.
    fields = {"type": "video", "segments": 3, "fps": 2.0, "collection": "staff", "threshold": None}
    without = msgspec.msgpack.encode(fields | {"embedding": False, "request_id": "r"})
    assert contract.decode_job(without) == contract.VideoJob(3, 2.0, "staff", None, False, "r")
    finished = {"type": "video", "video_id": "v", "tracks": [], "segments": 3, "frames": 12}
    finished |= {"duration_s": 6.0, "collection": "staff", "embedding": False, "worker": "w", "took_ms": 1.0}
    assert contract.decode_result(msgspec.msgpack.encode(finished)) == msgspec.structs.replace(
        result, threshold=None
    )
