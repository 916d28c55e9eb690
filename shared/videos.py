"""A video's progress in Redis, beside its job in the job store (shared/jobs.py; docs/video.md).

A video is one job of kind VideoJob (its state, owner, webhook, expiry and final VideoResult are
the job store's) and one job per segment (VideoSegmentJob, in the video lane). What the segments
have delivered so far lives here, in one hash per video:

  {p}:video:{id}   hash: segments, frames, duration_s (set at upload); segments_done,
                   frames_done (counted once per segment); seg:{index} (its VideoSegmentResult);
                   failed (the ErrorInfo of the first segment that failed); tracks (the joined
                   tracks so far, a TrackList) and tracks_from (how many segments they join);
                   cut_until (while the API cuts the upload into segments: Redis's clock, in
                   ms, past which a cut not extended again died with its API process; "dead"
                   once found so);
                   TTL result_ttl_s, like the job's: from the upload, again from each segment
                   recorded, and from the end

Every write after the upload is a script that does nothing once the hash is gone, so a segment
that finishes after its video was deleted (cancelled) or expired recreates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import msgspec
import redis

from shared.contract import ErrorInfo, Track, VideoSegmentResult, decode_error, encode

# KEYS: video hash. ARGV: index, the segment's result, its frames, ttl. Counts a segment once,
# however often it is recorded (a re-run after its worker died), never once all are in; each
# segment gives the video result_ttl_s more (as the video's job gets at each segment's start).
# -> segments done, -1 when the video is gone
RECORD = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('EXPIRE', KEYS[1], ARGV[4])
local done = tonumber(redis.call('HGET', KEYS[1], 'segments_done'))
if done >= tonumber(redis.call('HGET', KEYS[1], 'segments')) then return done end
if redis.call('HSETNX', KEYS[1], 'seg:' .. ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'frames_done', ARGV[3])
  return redis.call('HINCRBY', KEYS[1], 'segments_done', 1)
end
return tonumber(redis.call('HGET', KEYS[1], 'segments_done'))
"""

# KEYS: video hash. ARGV: the ErrorInfo. The first failure stays. -> 1 | 0 (gone or failed before)
FAIL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], 'failed', ARGV[1])
"""

# KEYS: video hash. ARGV: segments joined, the TrackList. Two workers publishing at once: tracks
# joined from more segments win (of equal counts the sets are equal: segments only accumulate).
PUBLISH = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'tracks_from') or '-1') > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'tracks_from', ARGV[1], 'tracks', ARGV[2])
return 1
"""


# Redis's clock in ms (scripts use it so that API replicas' clocks need not agree).
_NOW_MS = (
    "local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
)

# KEYS: video hash. ARGV: what to do with the video's cut into segments: 'state' (only read
# it), 'start' or 'extend' (with ARGV[2]: the ms it may go on from now), 'whole' (every segment
# queued). A cut past its deadline is dead, marked so at its first sight: neither it nor a
# retry can revive it; a whole one is not extended again. -> the state after: 'gone',
# 'whole', 'cutting' or 'dead'
CUT = (
    _NOW_MS
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local deadline = redis.call('HGET', KEYS[1], 'cut_until')
local state = 'cutting'
if not deadline then state = 'whole'
elseif deadline == 'dead' then state = 'dead'
elseif now > tonumber(deadline) then
  redis.call('HSET', KEYS[1], 'cut_until', 'dead')
  state = 'dead'
end
if ARGV[1] == 'start' or (ARGV[1] == 'extend' and state == 'cutting') then
  redis.call('HSET', KEYS[1], 'cut_until', now + tonumber(ARGV[2]))
  return 'cutting'
end
if ARGV[1] == 'whole' and state == 'cutting' then
  redis.call('HDEL', KEYS[1], 'cut_until')
  return 'whole'
end
return state
"""
)

CutState = Literal["gone", "whole", "cutting", "dead"]


def _segment_field(index: int) -> str:
    """The hash field of a segment's result (RECORD writes 'seg:' .. index)."""
    return f"seg:{index}"


class TrackList(msgspec.Struct, frozen=True):
    tracks: list[Track]


_SEGMENT = msgspec.msgpack.Decoder(VideoSegmentResult)
_TRACKS = msgspec.msgpack.Decoder(TrackList)


@dataclass(frozen=True, slots=True)
class VideoProgress:
    """What a video's segments delivered so far."""

    segments: int
    segments_done: int
    frames: int
    frames_done: int
    duration_s: float
    tracks: list[Track]  # joined from the segments done so far
    failed: ErrorInfo | None


class VideoStore:
    """Typed access to the video hashes; one instance per process."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_s: int) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_s = ttl_s
        self._record = client.register_script(RECORD)
        self._fail = client.register_script(FAIL)
        self._publish = client.register_script(PUBLISH)
        self._cut = client.register_script(CUT)

    def _key(self, video_id: str) -> str:
        return f"{self._prefix}:video:{video_id}"

    def create(self, video_id: str, segments: int, frames: int, duration_s: float, cut_s: float) -> None:
        """A video about to be cut into ``segments``; its cut is dead ``cut_s`` from now unless
        ``cutting`` extends it, or ``cut_whole`` ends it."""
        key = self._key(video_id)
        pipe = self._redis.pipeline(transaction=True)
        fields = (("segments", segments), ("frames", frames), ("duration_s", duration_s))
        for name, value in (*fields, ("segments_done", 0), ("frames_done", 0)):
            pipe.hset(key, name, value)
        pipe.expire(key, self._ttl_s)
        pipe.execute()
        self._cut_step(video_id, "start", cut_s)

    def cutting(self, video_id: str, cut_s: float) -> bool:
        """The cut goes on, until ``cut_s`` from now; False when the video is gone or its cut was
        found dead meanwhile (a retry may have erased it and made it anew): stop cutting."""
        return self._cut_step(video_id, "extend", cut_s) == "cutting"

    def cut_whole(self, video_id: str) -> bool:
        """Every segment of the video is queued; False as ``cutting``."""
        return self._cut_step(video_id, "whole") == "whole"

    def cut_state(self, video_id: str) -> CutState:
        """Where the video's cut into segments stands (``CUT``)."""
        return self._cut_step(video_id, "state")

    def _cut_step(self, video_id: str, step: str, cut_s: float = 0.0) -> CutState:
        answer = self._cut(keys=[self._key(video_id)], args=[step, max(1, round(cut_s * 1000))])
        return cast(CutState, cast(bytes, answer).decode())

    def exists(self, video_id: str) -> bool:
        return bool(self._redis.exists(self._key(video_id)))

    def record(self, result: VideoSegmentResult) -> int:
        """Keep a segment's result (once); the segments done, -1 when the video is gone."""
        args: list[int | bytes] = [result.index, encode(result), result.frames, self._ttl_s]
        return int(cast(int, self._record(keys=[self._key(result.video_id)], args=args)))

    def fail(self, video_id: str, error: ErrorInfo) -> None:
        self._fail(keys=[self._key(video_id)], args=[encode(error)])

    def publish(self, video_id: str, joined_from: int, tracks: list[Track]) -> None:
        """The tracks joined from ``joined_from`` segments, shown while the video runs."""
        self._publish(keys=[self._key(video_id)], args=[joined_from, encode(TrackList(tracks))])

    def may_publish(self, video_id: str, every_s: float) -> bool:
        """True for one caller per ``every_s`` per video: joining reads every segment done so
        far, so partial tracks of a long video are joined at this pace, not once per segment
        (which would read the video's tracks once per segment: quadratic in its length)."""
        key = f"{self._key(video_id)}:publish"
        return bool(self._redis.set(key, 1, nx=True, px=max(1, round(every_s * 1000))))

    def segment_results(self, video_id: str, segments: int) -> list[VideoSegmentResult]:
        """The segments done of the video's ``segments`` (its hash's count), by index: their
        fields alone, not the published tracks beside them (a thumbnail each, and they grow
        with the video)."""
        if segments <= 0:
            return []
        names = [_segment_field(index) for index in range(segments)]
        values = cast(list[bytes | None], self._redis.hmget(self._key(video_id), names))
        return [_SEGMENT.decode(value) for value in values if value is not None]

    def progress(self, video_id: str, with_tracks: bool = True) -> VideoProgress | None:
        """None when the video is unknown, deleted or expired. ``with_tracks=False`` leaves out
        the partial tracks (thumbnails included, they grow with the video): for the counts."""
        fields = ("segments", "segments_done", "frames", "frames_done", "duration_s", "failed")
        values = cast(
            list[bytes | None],
            self._redis.hmget(self._key(video_id), [*fields, *(("tracks",) if with_tracks else ())]),
        )
        if values[0] is None:
            return None
        segments, done, frames, frames_done, duration, failed = values[: len(fields)]
        tracks = values[len(fields)] if with_tracks else None
        return VideoProgress(
            segments=int(segments or 0),
            segments_done=int(done or 0),
            frames=int(frames or 0),
            frames_done=int(frames_done or 0),
            duration_s=float(duration or 0),
            tracks=[] if tracks is None else _TRACKS.decode(tracks).tracks,
            failed=None if failed is None else decode_error(failed),
        )

    def finished(self, video_id: str, segments: int) -> None:
        """The video's job has its VideoResult: drop its ``segments``' results and the partial
        tracks, keep the counts for the job's lifetime (result_ttl_s from now, as the job store
        gave the job). One round trip: the fields are known by name."""
        key = self._key(video_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(key, "tracks", *(_segment_field(index) for index in range(segments)))
        pipe.expire(key, self._ttl_s)
        pipe.execute()

    def delete(self, video_id: str) -> None:
        self._redis.delete(self._key(video_id), f"{self._key(video_id)}:publish")
