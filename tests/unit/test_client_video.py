"""The client's video calls and ``facerest video`` without a server (httpx.MockTransport): the
upload streamed as multipart with the options as form fields, a URL as JSON, polling with progress,
cancellation, and the tracks printed at the end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from facerest_client import AsyncFaceRest, FaceRest, InvalidName, RetryPolicy, Video
from facerest_client.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_OK, _parser, clock, run

VIDEO_ID = "0123456789abcdef0123456789abcdef"
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 400  # 100 kB: sent in several chunks


def track(number: int, start: float, end: float, subject: str | None) -> dict[str, Any]:
    return {
        "track": number,
        "start_s": start,
        "end_s": end,
        "frames": 5,
        "best": {
            "time_s": start,
            "bbox": [10, 20, 110, 140],
            "prob": 0.9,
            "quality": 0.7,
            "thumbnail_url": f"/videos/{VIDEO_ID}/tracks/{number}/thumbnail",
        },
        "subject": subject,
        "similarity": None if subject is None else 0.61,
    }


def state(status: str, done: int, tracks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": VIDEO_ID,
        "status": status,
        "progress": {"segments_done": done, "segments": 3, "frames_done": done * 20, "frames": 60},
        "duration_s": 6.0,
        "tracks": tracks,
    }


STATES = [
    state("running", 1, [track(0, 0.0, 1.4, "ann")]),
    state("running", 2, [track(0, 0.0, 1.4, "ann"), track(1, 1.5, 2.4, None)]),
    state("done", 3, [track(0, 0.0, 1.4, "ann"), track(1, 1.5, 2.4, None), track(2, 62.5, 63.0, "ann")]),
]


def service(
    seen: list[httpx.Request], states: list[dict[str, Any]], refuse_first: int = 0
) -> Callable[[httpx.Request], httpx.Response]:
    """POST /videos (after ``refuse_first`` 503s), then each GET the next state, DELETE 204."""
    refusals = [refuse_first]

    def answer(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        if request.method == "POST":
            if refusals[0]:
                refusals[0] -= 1
                return httpx.Response(
                    503, json={"code": "overloaded", "message": "full"}, headers={"Retry-After": "0"}
                )
            return httpx.Response(202, json={"id": VIDEO_ID, "status_url": f"/videos/{VIDEO_ID}"})
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json=states.pop(0))

    return answer


def form_of(request: httpx.Request) -> tuple[dict[str, str], bytes]:
    """A multipart request's text fields and its one file's bytes."""
    boundary = request.headers["Content-Type"].split("boundary=")[1].encode()
    fields, data = {}, b""
    for part in request.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part[2:-2].partition(b"\r\n\r\n")
        name = head.split(b'name="')[1].split(b'"')[0].decode()
        if b"filename=" in head:
            data = body
        else:
            fields[name] = body.decode()
    return fields, data


def test_upload_streams_the_file_with_options_as_form_fields_and_retries_it_whole(tmp_path: Path) -> None:
    (tmp_path / "door.mp4").write_bytes(MP4)
    seen: list[httpx.Request] = []
    retry = RetryPolicy(backoff_s=0)
    with FaceRest(
        "http://facerest.test", transport=httpx.MockTransport(service(seen, [], refuse_first=1)), retry=retry
    ) as client:
        submitted = client.submit_video(
            tmp_path / "door.mp4", fps=0.5, collection="staff", embedding=True, max_size=(640, 640)
        )
    assert submitted.id == VIDEO_ID and submitted.status_url == f"/videos/{VIDEO_ID}"
    assert [r.url.path for r in seen] == ["/videos", "/videos"]
    for request in seen:  # the retry sends the file again, from its start, with the same key
        fields, data = form_of(request)
        assert data == MP4
        assert fields == {
            "fps": "0.5",
            "collection": "staff",
            "embedding": "true",
            "max_size": "[640, 640]",
        }
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 1


def test_a_url_goes_as_json_and_a_bad_call_is_refused_before_sending() -> None:
    seen: list[httpx.Request] = []
    with FaceRest("http://facerest.test", transport=httpx.MockTransport(service(seen, []))) as client:
        client.submit_video(url="https://cams.example/door.mp4", fps=0)
        with pytest.raises(ValueError, match="one of them"):
            client.submit_video()
        with pytest.raises(ValueError, match="one of them"):
            client.submit_video(MP4, url="https://cams.example/door.mp4")
        with pytest.raises(InvalidName):
            client.submit_video(MP4, collection="../up")
        with pytest.raises(InvalidName):
            client.video("../results")
    assert len(seen) == 1 and seen[0].headers["Content-Type"] == "application/json"
    assert json.loads(seen[0].content) == {"url": "https://cams.example/door.mp4", "fps": 0}


def test_wait_video_reports_progress_and_partial_tracks_until_done() -> None:
    seen: list[httpx.Request] = []
    reports: list[Video] = []
    with FaceRest(
        "http://facerest.test", transport=httpx.MockTransport(service(seen, list(STATES)))
    ) as client:
        done = client.wait_video(VIDEO_ID, progress=reports.append, interval_s=2)
        client.cancel_video(VIDEO_ID)
    assert [(v.progress.segments_done, len(v.tracks)) for v in reports] == [(1, 1), (2, 2), (3, 3)]
    assert reports[0].progress.fraction == pytest.approx(1 / 3) and not reports[1].finished
    assert done.finished and done.status == "done" and done.duration_s == 6.0
    first = done.tracks[0]
    assert (first.subject, first.similarity, first.duration_s, first.best.bbox) == (
        "ann",
        0.61,
        1.4,
        (10, 20, 110, 140),
    )
    assert done.tracks[1].subject is None and done.tracks[1].embedding is None
    gets = [r for r in seen if r.method == "GET"]
    assert [dict(r.url.params) for r in gets] == [{"wait": "2"}] * 3
    assert seen[-1].method == "DELETE" and seen[-1].url.path == f"/videos/{VIDEO_ID}"


def test_async_client_waits_for_a_video_too() -> None:
    seen: list[httpx.Request] = []
    reports: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=STATES[len(seen) - 1])

    async def follow() -> Video:
        async with AsyncFaceRest("http://facerest.test", transport=httpx.MockTransport(answer)) as client:
            return await client.wait_video(VIDEO_ID, lambda v: reports.append(v.progress.segments_done))

    assert len(asyncio.run(follow()).tracks) == 3 and reports == [1, 2, 3]


def cli(
    tmp_path: Path, states: list[dict[str, Any]], *extra: str, interrupt_at: int | None = None
) -> tuple[int, list[httpx.Request]]:
    (tmp_path / "door.mp4").write_bytes(MP4)
    seen: list[httpx.Request] = []
    handler = service(seen, states)

    def answer(request: httpx.Request) -> httpx.Response:
        if interrupt_at is not None and request.method == "GET" and len(seen) == interrupt_at:
            raise KeyboardInterrupt
        return handler(request)

    args = _parser().parse_args(["video", str(tmp_path / "door.mp4"), *extra])
    with FaceRest("http://facerest.test", transport=httpx.MockTransport(answer)) as client:
        return run(client, args), seen


def test_cli_shows_progress_and_prints_who_when_and_how_long(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, seen = cli(tmp_path, list(STATES), "--collection", "staff", "--fps", "5", "--interval", "0.5")
    assert status == EXIT_OK
    assert form_of(seen[0])[0] == {"collection": "staff", "fps": "5.0"}
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "3 tracks in 0:06.0",
        "0:00.0 - 0:01.4     1.4 s  track 0    ann (0.61)",
        "0:01.5 - 0:02.4     0.9 s  track 1    unknown",
        "1:02.5 - 1:03.0     0.5 s  track 2    ann (0.61)",
    ]
    assert "] 1/3 segments  20/60 frames  1 tracks" in err
    assert f"[{'#' * 30}] 3/3 segments  60/60 frames  3 tracks" in err


def test_cli_exits_2_on_a_failed_video_and_cancels_on_ctrl_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    failed = state("failed", 1, []) | {"error": {"code": "invalid_video", "message": "no video stream"}}
    assert cli(tmp_path, [failed])[0] == EXIT_ERROR
    assert "no video stream (invalid_video)" in capsys.readouterr().err
    status, seen = cli(tmp_path, list(STATES), interrupt_at=2)
    assert status == EXIT_INTERRUPTED
    assert [r.method for r in seen] == ["POST", "GET", "DELETE"]
    assert f"cancelled video {VIDEO_ID}" in capsys.readouterr().err


def test_clock_reads_as_a_player_shows_time() -> None:
    assert [clock(s) for s in (0, 9.96, 59.97, 75.25, 3725.0)] == [
        "0:00.0",
        "0:10.0",
        "1:00.0",
        "1:15.2",
        "1:02:05.0",
    ]


def test_async_client_streams_an_upload_from_disk_too(tmp_path: Path) -> None:
    (tmp_path / "door.mp4").write_bytes(MP4)
    bodies: list[bytes] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(await request.aread())
        return httpx.Response(202, json={"id": VIDEO_ID, "status_url": f"/videos/{VIDEO_ID}"})

    async def upload() -> str:
        async with AsyncFaceRest("http://facerest.test", transport=httpx.MockTransport(answer)) as client:
            return (await client.submit_video(tmp_path / "door.mp4", fps=1)).id

    assert asyncio.run(upload()) == VIDEO_ID
    (body,) = bodies
    assert MP4 in body and b'name="fps"\r\n\r\n1\r\n' in body
