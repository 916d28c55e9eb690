"""POST /videos, GET /videos/{id}, DELETE /videos/{id}, a track's thumbnail (docs/video.md).

The upload streams to the data directory; the API probes it, cuts it into segments at keyframes
(api/videofile.py) and queues one job per segment in the video lane, each segment's bytes its
job's input; the file is deleted once cut. The video itself is one more job (VideoJob) that the
worker recording the last segment finishes: its state, owner, webhook and expiry are the job
store's, its progress and partial tracks shared/videos.py's.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import orjson
from flask import Blueprint, Response, g, request
from typing_extensions import Buffer
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import parse_form_data

from api.auth import request_owner, share_owner
from api.bodies import option_fields
from api.collection_access import collection_access, existing
from api.context import ApiContext, context
from api.openapi import Operation, Query, Reply, Upload, documented
from api.query import seconds_arg
from api.render import encode, error_detail, render_tracks, wants_msgpack
from api.schemas import ErrorDetail
from api.schemas.videos import VideoAccepted, VideoBody, VideoDeleted, VideoRequest
from api.submit import (
    IDEMPOTENCY_DOC,
    IDEMPOTENCY_HEADER,
    QUEUED_REPLIES,
    callback_url,
    check_retry,
    idempotency_key,
    request_route,
    send,
    wait_for_replica,
)
from api.videofile import VideoInfo, VideoLimits, analysed_frames, cut_segments, plan_segments, probe
from shared.contract import (
    IdempotencyRecord,
    RenderSettings,
    Track,
    VideoJob,
    VideoResult,
    VideoSegmentJob,
    segment_job_id,
)
from shared.errors import (
    InvalidField,
    InvalidRequest,
    JobNotFound,
    LimitExceeded,
    ServiceUnavailable,
    TooManyJobs,
    VideoNotFound,
)
from shared.fetch import UrlFetcher
from shared.jobs import JobState, JobStatus, Share, ShareFull
from shared.queue import video_lane
from shared.videos import VideoProgress, VideoStore

log = logging.getLogger("facerest.api")
bp = Blueprint("videos", __name__)
VIDEO_ID = re.compile(r"^[0-9a-f]{32}$")
UPLOAD_FIELD = "file"
# Room for the multipart envelope and the option fields around the file.
FORM_OVERHEAD_BYTES = 1 << 20
# The cut of an upload into segments holds a lease in the video's hash (shared/videos.py:
# cut_until), pushed this far ahead every quarter of it by a thread while the cut runs. An API
# process that dies mid-cut stops pushing it, and within this time the video counts as dead: a
# retry with its Idempotency-Key (the client's come within seconds) waits up to this long for
# that verdict, then makes the video anew instead of answering one that would never finish.
CUT_LEASE_S = 10.0
CUT_POLL_S = 0.1

NOT_FOUND = Reply("Unknown, deleted or expired video, or (with API keys) another key's", ErrorDetail)

POST_DOC = Operation(
    summary="Find, track and identify every face in a video (queued as segments)",
    description="A multipart upload (the video in `file`, options as form fields) or JSON with "
    "`url`. Answers 202 at once; GET status_url for progress and tracks (docs/video.md).",
    request=VideoRequest,
    upload=Upload(field=UPLOAD_FIELD, multiple=False),
    headers=(IDEMPOTENCY_DOC,),
    replies={
        202: Reply(
            "Queued (a retry with the same Idempotency-Key: the video it made, its status now)",
            VideoAccepted,
            msgpack=True,
        ),
        400: Reply("invalid_request: no file in the multipart field 'file' (or more than one)", ErrorDetail),
        403: Reply("collection_forbidden: this API key may not use the collection", ErrorDetail),
        404: Reply(
            "collection_not_found: no such collection to identify against; video_not_found: the "
            "video this Idempotency-Key made was deleted or expired",
            ErrorDetail,
        ),
        409: QUEUED_REPLIES[409],
        413: Reply(
            "limit_exceeded: max_video_bytes, max_video_duration_s, max_video_pixels or "
            "max_video_frames (the message names it)",
            ErrorDetail,
        ),
        422: Reply(
            "invalid_video (not a video, corrupt, truncated), validation_error, url_refused, "
            "url_fetch_failed",
            ErrorDetail,
        ),
        429: Reply(
            "too_many_jobs: this API key has max_queued_per_key jobs unfinished",
            ErrorDetail,
            retry_after=True,
        ),
        503: Reply("Redis unavailable: retry after Retry-After seconds", ErrorDetail, retry_after=True),
    },
)
WAIT_QUERY = Query(
    "wait",
    "Long-poll: answer as soon as the video has finished, or after this many seconds (at most "
    "sync_timeout_s) with its state then.",
    {"type": "number", "minimum": 0},
)


def _limits(ctx: ApiContext) -> VideoLimits:
    settings = ctx.settings
    return VideoLimits(settings.max_video_duration_s, settings.max_video_pixels, settings.max_video_frames)


class _HashingFile(io.BufferedRandom):
    """A file that hashes what is written to it: the upload's digest as it streams in, with no
    second read of up to max_video_bytes."""

    def __init__(self, path: Path) -> None:
        super().__init__(io.FileIO(path, "w+"))
        self.sha256 = hashlib.sha256()

    def write(self, data: Buffer, /) -> int:
        self.sha256.update(data)
        return super().write(data)


@dataclass(frozen=True, slots=True)
class _Received:
    """A request's options, and the digest an Idempotency-Key's retry must match."""

    body: VideoRequest
    digest: str


def _receive_upload(ctx: ApiContext, path: Path) -> _Received:
    """The multipart body's file streamed into ``path`` (werkzeug writes it chunk by chunk), its
    other fields as the options. The digest covers the file's bytes and the option fields, not
    the multipart envelope (whose boundary a client draws anew for each attempt)."""
    limit = ctx.settings.max_video_bytes
    opened: list[IO[bytes]] = []  # the upload (a _HashingFile), then any other file

    def stream_factory(
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        # The first file goes to the data directory; any other is kept aside, then refused.
        sink: IO[bytes] = _HashingFile(path) if not opened else tempfile.TemporaryFile()  # noqa: SIM115
        opened.append(sink)
        return sink

    try:
        _, form, files = parse_form_data(
            request.environ, stream_factory=stream_factory, max_content_length=limit + FORM_OVERHEAD_BYTES
        )
    except RequestEntityTooLarge:
        raise LimitExceeded(f"the upload is larger than max_video_bytes={limit}") from None
    finally:
        for sink in opened:
            sink.close()
    if UPLOAD_FIELD not in files or len(opened) != 1:
        raise InvalidRequest(f"send the video as one file in the multipart field {UPLOAD_FIELD!r}")
    if path.stat().st_size > limit:
        raise LimitExceeded(f"the upload is larger than max_video_bytes={limit}")
    body = VideoRequest.model_validate(option_fields(form))
    options = sorted(form.items(multi=True), key=lambda item: item[0])  # a name's values keep their order
    upload = cast(_HashingFile, opened[0])
    digest = hashlib.sha256(orjson.dumps([upload.sha256.hexdigest(), options])).hexdigest()
    return _Received(body, digest)


def _read_json() -> _Received:
    """A JSON body's options (its video is still at its URL); the digest is of its bytes."""
    if request.mimetype != "application/json":
        raise InvalidRequest("send the video as multipart/form-data (field 'file'), or JSON with 'url'")
    raw = request.get_data()
    body = VideoRequest.model_validate_json(raw)
    if body.url is None:
        raise InvalidField("url: a JSON body names the video's URL (or upload it as multipart/form-data)")
    return _Received(body, hashlib.sha256(raw).hexdigest())


def _fetch(ctx: ApiContext, url: str, path: Path) -> None:
    """The video at ``url`` written to ``path``, under the image URLs' address rules."""
    settings = ctx.settings
    fetcher = UrlFetcher(
        allow=settings.url_allow_list,
        timeout_s=settings.video_url_timeout_s,
        max_redirects=settings.url_max_redirects,
        max_bytes=settings.max_video_bytes,
        limit_name="max_video_bytes",
    )
    with path.open("wb") as sink:
        fetcher.fetch(url, sink=sink)


def _check(ctx: ApiContext, body: VideoRequest) -> str:
    """Refuse the request before any work on its video: its collection (access, existence: as
    /recognize, 404 before any work, not tracks unnamed) and its callback URL, which it returns."""
    if body.collection is not None:
        collection_access(ctx, body.collection)
        existing(ctx, body.collection)
    return callback_url(ctx, body.callback_url)


def _accepted(video_id: str, status: JobStatus = JobStatus.QUEUED) -> Response:
    accepted: VideoAccepted = {"id": video_id, "status": status.value, "status_url": f"/videos/{video_id}"}
    return encode(accepted, wants_msgpack(request), status=202)


def _replay(ctx: ApiContext, key: str, record: IdempotencyRecord) -> Response:
    """A retry with an Idempotency-Key that made a video: that video, its status now (or, where
    that video died while it was cut and a concurrent retry made it anew, the new one)."""
    try:
        state = ctx.store.state(record.job_id)
    except JobNotFound:
        now = ctx.store.idempotency(key)
        if now is not None and now.job_id != record.job_id:
            return _replay(ctx, key, now)
        raise VideoNotFound(
            f"this {IDEMPOTENCY_HEADER} made video {record.job_id!r}, which was deleted or expired"
        ) from None
    return _accepted(state.id, state.status)


@bp.post("/videos")
@documented(POST_DOC)
def post_video() -> Response:
    ctx = context()
    settings = ctx.settings
    owner = request_owner(ctx.api_keys)
    video_id = uuid.uuid4().hex
    folder = settings.data_dir / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{video_id}.upload"
    try:
        # A retry is answered from the video its key made before anything else is done: before
        # a URL is fetched, before an upload is probed or cut (an upload is read whole first:
        # its digest covers the file).
        upload = request.mimetype == "multipart/form-data"
        got = _receive_upload(ctx, path) if upload else _read_json()
        # After the body: a refusal sent before an upload was read would reset the connection.
        key = idempotency_key(ctx, owner)
        record = None if key is None else ctx.store.idempotency(key)
        if key is not None and record is not None:
            check_retry(record, got.digest)
            if not _cut_died(ctx, key, record):
                return _replay(ctx, key, record)
        # A URL's request is whole without its video: checked before the download (up to
        # max_video_bytes, for up to video_url_timeout_s). An upload's options come in its form.
        callback = _check(ctx, got.body)
        if not upload:
            _fetch(ctx, cast(str, got.body.url), path)
        info = probe(path, _limits(ctx))
        claim = None if key is None else (key, got.digest)
        made = _queue(ctx, video_id, owner, got.body, info, path, callback, claim)
    finally:
        path.unlink(missing_ok=True)  # cut into segments (or refused): the upload is not kept
    if key is not None and made is not None:  # a concurrent retry with the same key made the video first
        log.info(
            "video %s: its Idempotency-Key made video %s first; this upload is dropped", video_id, made.job_id
        )
        check_retry(made, got.digest)
        return _replay(ctx, key, made)
    return _accepted(video_id)


def _cut_died(ctx: ApiContext, key: str, record: IdempotencyRecord) -> bool:
    """Whether the video this retry's Idempotency-Key made died while it was cut (its API
    process stopped before every segment was queued). A cut still under way is waited for, at
    most one lease: a live one keeps its lease, a dead one's lapses. A dead video is erased and
    its key released, and the retry makes the video anew (two such retries at once: the claim in
    ``_queue`` picks one, the other answers its video)."""
    waited_until = time.monotonic() + CUT_LEASE_S + 1
    state = ctx.videos.cut_state(record.job_id)
    while state == "cutting" and time.monotonic() < waited_until:
        time.sleep(CUT_POLL_S)
        state = ctx.videos.cut_state(record.job_id)
    if state != "dead":
        return False
    progress = ctx.videos.progress(record.job_id, with_tracks=False)
    _erase(ctx, record.job_id, 0 if progress is None else progress.segments)
    ctx.store.release(key, record)
    log.warning("video %s died while it was cut; a retry with its key makes it anew", record.job_id)
    return True


class CutLease:
    """Keeps a video's cut alive from a thread while it runs (``VideoStore.cutting`` every
    quarter lease); ``lost`` is set once the video is gone or its cut was found dead (a stall
    past the lease: a retry may have made the video anew), and the cut must stop."""

    def __init__(self, videos: VideoStore, video_id: str, lease_s: float = CUT_LEASE_S) -> None:
        self._videos = videos
        self._video_id = video_id
        self._lease_s = lease_s
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cut-{video_id}", daemon=True)

    def __enter__(self) -> CutLease:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._lease_s / 4):
            if not self._videos.cutting(self._video_id, self._lease_s):
                self.lost.set()
                return

    def check(self) -> None:
        if self.lost.is_set():
            raise self.given_up()

    def given_up(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"video {self._video_id}: its cut into segments stalled past {self._lease_s:g} s, or the "
            "video was deleted meanwhile, and was given up (a retry with its Idempotency-Key makes it anew)"
        )


def _erase(ctx: ApiContext, video_id: str, segments: int) -> None:
    """A video's jobs and progress. Queued segments are dropped at their claim, running ones'
    results at their finish: both find no job. The video's hash goes last, so a segment
    recording meanwhile finds no video."""
    ctx.store.erase([video_id, *(segment_job_id(video_id, i) for i in range(segments))])
    ctx.videos.delete(video_id)


def _queue(
    ctx: ApiContext,
    video_id: str,
    owner: str,
    body: VideoRequest,
    info: VideoInfo,
    path: Path,
    callback: str,
    claim: tuple[str, str] | None,
) -> IdempotencyRecord | None:
    """Store the video's job and progress, then cut and queue its segments one by one (the first
    runs while the others are cut); a segment that cannot be cut erases all and refuses the video.
    ``claim``: the Idempotency-Key (its Redis key, the request's digest), recorded with the job
    unless a concurrent request with that key made its video first: then nothing is queued and
    that video's record is returned."""
    settings = ctx.settings
    plan = plan_segments(info.keyframes, info.duration_s, settings.video_segment_s)
    frames = analysed_frames(info, body.fps)
    job = VideoJob(
        segments=len(plan),
        duration_s=info.duration_s,
        frames=frames,
        fps=body.fps,
        collection=body.collection,
        threshold=body.recognition_threshold,
        embedding=body.embedding,
        request_id=g.request_id,
    )
    render = RenderSettings(api_ver="2", landmarks=False, data_count=0, owner=owner)
    lane = video_lane(settings)
    share = Share(
        share_owner(ctx.api_keys, settings.trusted_networks),
        settings.max_queued_per_key,
        settings.max_images_in_flight_per_key,
    )
    ctx.videos.create(video_id, len(plan), frames, info.duration_s, CUT_LEASE_S)
    route = request_route()
    made = ctx.store.create(
        video_id, job, render, claim, route=route, share=share, queue=lane, callback=callback
    )
    if made is not None:
        ctx.videos.delete(video_id)  # this request's own progress hash: the other video's stays
    if isinstance(made, ShareFull):
        raise TooManyJobs(
            f"this API key (or client address, with keys off) has {made.jobs} unfinished jobs; "
            f"max_queued_per_key={settings.max_queued_per_key}; retry in {settings.retry_after_s} s",
            settings.retry_after_s,
        )
    if made is not None:
        return made
    options = body.options(settings.max_faces)
    queued = [video_id]
    lease = CutLease(ctx.videos, video_id)
    try:
        with lease:
            for segment, (data, packets) in zip(plan, cut_segments(path, plan), strict=True):
                segment_job = VideoSegmentJob(
                    video_id=video_id,
                    index=segment.index,
                    data=data,
                    start_s=segment.start_s,
                    end_s=segment.end_s,
                    frames=packets,
                    fps=body.fps,
                    rotation=info.rotation,
                    options=options,
                    request_id=g.request_id,
                )
                job_id = segment_job_id(video_id, segment.index)
                ctx.store.create(job_id, segment_job, render, queue=lane)
                queued.append(job_id)
                # Each segment goes out as soon as it is cut; one wait for a replica at the end
                # covers them all (a replica that acknowledged a write holds every earlier one).
                send(ctx, job_id, lane, idempotent=False, replicate=False)
                lease.check()
        # The lease's thread has stopped: nothing extends the cut after it is whole.
        if not ctx.videos.cut_whole(video_id):
            raise lease.given_up()
    except BaseException:
        ctx.store.erase(queued)
        ctx.videos.delete(video_id)
        if claim is not None:  # a retry makes the video anew, not answers with an erased one
            ctx.store.release(claim[0], IdempotencyRecord(video_id, claim[1], route))
        raise
    if ctx.settings.replicated:
        wait_for_replica(ctx, queued[-1])
    return None


def _video_state(ctx: ApiContext, video_id: str, wait_s: float | None = None) -> JobState:
    """The video's job, for its owner only; VideoNotFound for any other id."""
    if not VIDEO_ID.fullmatch(video_id):
        raise VideoNotFound("no such video: a video id is 32 lowercase hex digits")
    owner = request_owner(ctx.api_keys)
    try:
        return ctx.store.state(video_id, owner) if not wait_s else ctx.store.wait(video_id, wait_s, owner)
    except JobNotFound:
        raise VideoNotFound(f"no video with id {video_id!r} (unknown, deleted or expired)") from None


def _progress(ctx: ApiContext, state: JobState, with_tracks: bool = True) -> VideoProgress:
    """A video without its result yet: its progress (with the tracks joined so far)."""
    progress = ctx.videos.progress(state.id, with_tracks)
    if progress is None:
        raise VideoNotFound(f"no video with id {state.id!r} (unknown, deleted or expired)")
    return progress


def _tracks(ctx: ApiContext, state: JobState) -> list[Track]:
    """The video's tracks: all once done, those joined so far while it runs."""
    if isinstance(state.result, VideoResult):
        return state.result.tracks
    return _progress(ctx, state).tracks


def video_body(ctx: ApiContext, state: JobState) -> VideoBody:
    # Each read once: the partial tracks carry a thumbnail each and grow with the video.
    result = state.result if isinstance(state.result, VideoResult) else None
    if result is not None:
        tracks, embedding = result.tracks, result.embedding
        counts = (result.segments, result.segments, result.frames, result.frames)
        duration_s, collection = result.duration_s, result.collection
    else:
        progress, stored = _progress(ctx, state), ctx.store.load_input(state.id)
        job = stored if isinstance(stored, VideoJob) else None
        tracks, embedding = progress.tracks, job is not None and job.embedding
        counts = (progress.segments_done, progress.segments, progress.frames_done, progress.frames)
        duration_s, collection = progress.duration_s, None if job is None else job.collection
    body: VideoBody = {
        "id": state.id,
        "status": state.status.value,
        "created": state.created,
        "finished": state.finished,
        "duration_s": duration_s,
        "progress": {
            "segments_done": counts[0],
            "segments": counts[1],
            "frames_done": counts[2],
            "frames": counts[3],
        },
        "tracks": render_tracks(state.id, tracks, embedding),
        "collection": collection,
    }
    if state.error is not None:
        body["error"] = error_detail(state.error)
    return body


@bp.get("/videos/<video_id>")
@documented(
    Operation(
        summary="A video's progress and tracks (partial while it runs)",
        query=(WAIT_QUERY,),
        replies={
            200: Reply("The video", VideoBody, msgpack=True),
            404: NOT_FOUND,
            422: Reply("wait is not a number of seconds from 0 to sync_timeout_s", ErrorDetail),
        },
    )
)
def get_video(video_id: str) -> Response:
    ctx = context()
    wait_s = seconds_arg("wait", ctx.settings.sync_timeout_s)
    state = _video_state(ctx, video_id, wait_s)
    return encode(video_body(ctx, state), wants_msgpack(request))


@bp.delete("/videos/<video_id>")
@documented(
    Operation(
        summary="Cancel a video and erase it: its queued segments, its results, its progress",
        replies={200: Reply("Deleted", VideoDeleted, msgpack=True), 404: NOT_FOUND},
    )
)
def delete_video(video_id: str) -> Response:
    ctx = context()
    state = _video_state(ctx, video_id)
    if isinstance(state.result, VideoResult):
        segments = state.result.segments
    else:
        segments = _progress(ctx, state, with_tracks=False).segments
    _erase(ctx, video_id, segments)
    deleted: VideoDeleted = {"id": video_id, "deleted": True}
    return encode(deleted, wants_msgpack(request))


@bp.get("/videos/<video_id>/tracks/<int:track>/thumbnail")
@documented(
    Operation(
        summary="A track's best face, as a JPEG",
        replies={200: Reply("The thumbnail", None, media_type="image/jpeg"), 404: NOT_FOUND},
    )
)
def track_thumbnail(video_id: str, track: int) -> Response:
    ctx = context()
    tracks = _tracks(ctx, _video_state(ctx, video_id))
    if track >= len(tracks):
        raise VideoNotFound(f"video {video_id!r} has no track {track} (it has {len(tracks)})")
    return Response(tracks[track].best.thumbnail, mimetype="image/jpeg")
