"""POST/GET/DELETE /videos against the real system: videos filmed with PyAV from the package
photos (testkit/video.py, with known truth), a real Redis, real workers, real models."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from pydantic import TypeAdapter

from api.schemas import JobStateBody
from api.schemas.videos import VideoBody
from deploy.launcher import Service, Stack, wait_until
from testkit.video import (
    FoundTrack,
    default_scene,
    long_scene,
    make_video,
    not_a_video,
    portrait,
    score_tracks,
    truncated_copy,
)
from tests.client import b64
from tests.localserver import LocalServer
from tests.localserver import body as answer_with

TIMEOUT = 60
# Small enough that the 6 s test video is several segments, with borders inside its shots.
SEGMENT_S = 1.0
KEYFRAME_EVERY = 8  # frames, at the scene's 10 fps
MAX_VIDEO_BYTES = 2_000_000


@pytest.fixture(scope="module")
def video_api(system: Stack) -> Iterator[str]:
    api: Service = system.start_api(
        extra_env={
            "FACEREST_VIDEO_SEGMENT_S": str(SEGMENT_S),
            "FACEREST_MAX_VIDEO_BYTES": str(MAX_VIDEO_BYTES),
        }
    )
    yield api.url
    api.stop()


def upload(api: str, path: Path, key: str | None = None, **fields: Any) -> requests.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    with path.open("rb") as file:
        data = {name: str(value) for name, value in fields.items()}
        return requests.post(
            f"{api}/videos", files={"file": file}, data=data, headers=headers, timeout=TIMEOUT
        )


def video_hashes(system: Stack) -> set[str]:
    """The ids of the videos the video store holds."""
    keys = (key.decode() for key in system.client().scan_iter(match="facerest:video:*"))
    return {key.removeprefix("facerest:video:") for key in keys if key.count(":") == 2}


def video(api: str, video_id: str, wait: float = 0) -> dict[str, Any]:
    answer = requests.get(f"{api}/videos/{video_id}", params={"wait": wait} if wait else {}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return cast(dict[str, Any], answer.json())


def finished(api: str, video_id: str, within_s: float = 60) -> dict[str, Any]:
    wait_until(lambda: video(api, video_id, wait=5)["status"] in ("done", "failed"), within_s, "video end")
    return video(api, video_id)


def found(body: dict[str, Any]) -> list[FoundTrack]:
    return [
        FoundTrack(t["start_s"], t["end_s"], t["best"]["time_s"], tuple(t["best"]["bbox"]), t["subject"])
        for t in body["tracks"]
    ]


def test_a_video_is_split_tracked_and_its_tracks_identified_against_an_enrolled_photo(
    video_api: str, tmp_path: Path
) -> None:
    enrolled = requests.post(
        f"{video_api}/collections/videos/subjects/yaoming/faces",
        json={"images": {"data": [b64(portrait("yaoming"))]}},
        timeout=TIMEOUT,
    )
    assert enrolled.status_code == 201, enrolled.text
    scene = dataclasses.replace(default_scene(), keyframe_every=KEYFRAME_EVERY)
    truth = make_video(tmp_path / "scene.mp4", scene)
    answer = upload(video_api, tmp_path / "scene.mp4", fps=0, collection="videos")
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    assert accepted["status_url"] == f"/videos/{accepted['id']}"
    body = finished(video_api, accepted["id"])
    assert body["status"] == "done", body
    # Segments start at the first keyframe 1 s after the last start: 0, 1.5 (a cut), 2.5 (a
    # cut), 4.0 (a cut), 5.6 (mid-shot: t1-1 and t1-4 are cut by the border and joined).
    assert body["progress"] == {"segments_done": 5, "segments": 5, "frames_done": 60, "frames": 60}
    assert body["duration_s"] == pytest.approx(truth.duration_s, abs=0.15)
    score = score_tracks(truth, found(body), tolerance_s=0.2)
    assert (score.truth_tracks, score.found_tracks) == (7, 7), body["tracks"]
    assert (score.fragments, score.missed, score.switches, score.false_tracks) == (0, 0, 0, 0)
    named = {t["subject"]: t for t in body["tracks"] if t["subject"] is not None}
    assert list(named) == ["yaoming"]
    assert named["yaoming"]["similarity"] > 0.5
    thumbnail = requests.get(f"{video_api}{named['yaoming']['best']['thumbnail_url']}", timeout=TIMEOUT)
    assert thumbnail.status_code == 200 and thumbnail.content[:3] == b"\xff\xd8\xff"
    # Every field sent is in the documented types (they forbid unknown keys).
    TypeAdapter(VideoBody).validate_python(body, strict=False)
    # /results shows the same job, as its webhook would send it.
    state = requests.get(f"{video_api}/results/{accepted['id']}", timeout=TIMEOUT).json()
    TypeAdapter(JobStateBody).validate_python(state, strict=False)
    assert len(state["result"]["tracks"]) == 7 and state["result"]["segments"] == 5


def test_a_rotated_video_is_analysed_upright(video_api: str, tmp_path: Path) -> None:
    truth = make_video(tmp_path / "rotated.mp4", default_scene(rotation=90))
    accepted = upload(video_api, tmp_path / "rotated.mp4", fps=2).json()
    body = finished(video_api, accepted["id"])
    score = score_tracks(truth, found(body), tolerance_s=0.3)
    assert score.missed == 0 and score.false_tracks == 0, body["tracks"]
    width, height = truth.scene.size  # display size: 360 x 640
    assert all(t["best"]["bbox"][2] <= width and t["best"]["bbox"][3] <= height for t in body["tracks"])


def test_a_video_url_is_fetched_under_the_image_url_rules(
    api: str, allowing_api: str, tmp_path: Path
) -> None:
    make_video(tmp_path / "scene.mp4")
    with LocalServer() as server:
        server.routes["/scene.mp4"] = answer_with((tmp_path / "scene.mp4").read_bytes())
        refused = requests.post(f"{api}/videos", json={"url": server.url("/scene.mp4")}, timeout=TIMEOUT)
        assert refused.status_code == 422 and refused.json()["code"] == "url_refused", refused.text
        accepted = requests.post(
            f"{allowing_api}/videos", json={"url": server.url("/scene.mp4"), "fps": 1}, timeout=TIMEOUT
        )
        assert accepted.status_code == 202, accepted.text
    done = finished(allowing_api, accepted.json()["id"])
    assert done["status"] == "done" and done["progress"]["frames_done"] == 6 and done["tracks"], done


def test_an_upload_retried_with_its_idempotency_key_makes_one_video(
    system: Stack, api: str, tmp_path: Path
) -> None:
    make_video(tmp_path / "scene.mp4")
    before = video_hashes(system)
    key = uuid.uuid4().hex
    # Two at once (both read and probe the file; the claim stored with the job picks one), then
    # one after the first answered (answered from the stored key, before any cut).
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: upload(api, tmp_path / "scene.mp4", key, fps=0.5), range(2)))
    answers.append(upload(api, tmp_path / "scene.mp4", key, fps=0.5))
    assert [answer.status_code for answer in answers] == [202, 202, 202], [a.text for a in answers]
    ids = {answer.json()["id"] for answer in answers}
    assert len(ids) == 1 and answers[2].json()["status_url"] == f"/videos/{next(iter(ids))}"
    assert video_hashes(system) - before == ids
    # The key names that request: other options, or another route, conflict.
    other = upload(api, tmp_path / "scene.mp4", key, fps=1)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict", other.text
    extract = requests.post(
        f"{api}/extract",
        json={"images": {"data": [b64(portrait("yaoming"))]}},
        headers={"Idempotency-Key": key},
        timeout=TIMEOUT,
    )
    assert extract.status_code == 409 and "POST /videos" in extract.json()["message"], extract.text
    # A key that is not one is refused with an answer (after the upload is read), no video made.
    bad = upload(api, tmp_path / "scene.mp4", "two words", fps=0.5)
    assert bad.status_code == 422 and "Idempotency-Key" in bad.json()["message"], bad.text
    assert video_hashes(system) - before == ids
    body = finished(api, next(iter(ids)))
    assert body["status"] == "done" and body["progress"]["frames_done"] == 3, body
    assert upload(api, tmp_path / "scene.mp4", key, fps=0.5).json()["status"] == "done"


def test_a_retry_of_a_video_whose_cut_died_makes_it_anew(system: Stack, api: str, tmp_path: Path) -> None:
    """An API process that dies while it cuts an upload into segments leaves a video that would
    never finish. Played here by the state such a cut leaves in the video's hash: a cut_until
    deadline long past. A retry with the Idempotency-Key then erases that video and makes it
    anew; while the cut's deadline is ahead, a retry waits for it to end, then answers it."""
    make_video(tmp_path / "scene.mp4")
    key = uuid.uuid4().hex
    first = upload(api, tmp_path / "scene.mp4", key, fps=0.5)
    assert first.status_code == 202, first.text
    video_id = first.json()["id"]
    hash_key = f"facerest:video:{video_id}"
    client = system.client()
    # A cut under way, which ends half a second later: the retry waits for it, then answers it.
    client.hset(hash_key, "cut_until", 2**52)
    threading.Timer(0.5, client.hdel, (hash_key, "cut_until")).start()
    assert upload(api, tmp_path / "scene.mp4", key, fps=0.5).json()["id"] == video_id
    assert client.hget(hash_key, "cut_until") is None
    client.hset(hash_key, "cut_until", 1)  # a cut whose lease lapsed long ago: dead
    again = upload(api, tmp_path / "scene.mp4", key, fps=0.5)
    assert again.status_code == 202, again.text
    remade = again.json()["id"]
    assert remade != video_id
    gone = requests.get(f"{api}/videos/{video_id}", timeout=TIMEOUT)
    assert gone.status_code == 404 and gone.json()["code"] == "video_not_found", gone.text
    assert upload(api, tmp_path / "scene.mp4", key, fps=0.5).json()["id"] == remade
    body = finished(api, remade)
    assert body["status"] == "done" and body["progress"]["frames_done"] == 3, body
    assert client.hget(f"facerest:video:{remade}", "cut_until") is None  # its cut was whole


def test_a_url_retried_with_its_idempotency_key_is_not_fetched_again(
    allowing_api: str, tmp_path: Path
) -> None:
    make_video(tmp_path / "scene.mp4")
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    with LocalServer() as server:
        server.routes["/scene.mp4"] = answer_with((tmp_path / "scene.mp4").read_bytes())
        body = {"url": server.url("/scene.mp4"), "fps": 0.5}
        first, again = (
            requests.post(f"{allowing_api}/videos", json=body, headers=headers, timeout=TIMEOUT)
            for _ in range(2)
        )
        assert first.status_code == again.status_code == 202, (first.text, again.text)
        assert first.json()["id"] == again.json()["id"]
        assert len(server.hosts) == 1  # one download
        other = requests.post(
            f"{allowing_api}/videos", json={**body, "fps": 1}, headers=headers, timeout=TIMEOUT
        )
        assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict", other.text
        assert len(server.hosts) == 1


def test_a_url_naming_an_unknown_collection_is_refused_before_it_is_fetched(
    allowing_api: str, tmp_path: Path
) -> None:
    make_video(tmp_path / "scene.mp4")
    with LocalServer() as server:
        server.routes["/scene.mp4"] = answer_with((tmp_path / "scene.mp4").read_bytes())
        body = {"url": server.url("/scene.mp4"), "collection": "nobody-here"}
        nobody = requests.post(f"{allowing_api}/videos", json=body, timeout=TIMEOUT)
        assert nobody.status_code == 404 and nobody.json()["code"] == "collection_not_found", nobody.text
        assert server.hosts == []


def test_a_file_that_is_not_a_video_or_is_truncated_is_refused_alone(video_api: str, tmp_path: Path) -> None:
    refused = upload(video_api, not_a_video(tmp_path / "text.mp4"))
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_video", refused.text
    nobody = upload(video_api, tmp_path / "text.mp4", collection="nobody-here")
    assert nobody.status_code == 404 and nobody.json()["code"] == "collection_not_found", nobody.text
    # A form field is text: a collection named with digits is a name, not a number (422).
    digits = upload(video_api, tmp_path / "text.mp4", collection="2024")
    assert digits.status_code == 404 and "'2024'" in digits.json()["message"], digits.text
    make_video(tmp_path / "whole.mp4")
    cut = upload(video_api, truncated_copy(tmp_path / "whole.mp4", tmp_path / "cut.mp4"))
    assert cut.status_code == 422 and cut.json()["code"] == "invalid_video", cut.text
    too_big = requests.post(
        f"{video_api}/videos", files={"file": b"\0" * (MAX_VIDEO_BYTES + 1)}, timeout=TIMEOUT
    )
    assert too_big.status_code == 413 and "max_video_bytes" in too_big.json()["message"], too_big.text
    # Nothing of them is left in the data directory.
    assert requests.get(f"{video_api}/videos/{'0' * 32}", timeout=TIMEOUT).status_code == 404


def test_a_video_whose_segment_does_not_decode_fails_alone(video_api: str, tmp_path: Path) -> None:
    # Its index and packets intact (the probe passes), the data of its second segment overwritten.
    make_video(tmp_path / "scene.mp4", dataclasses.replace(default_scene(), keyframe_every=KEYFRAME_EVERY))
    data = bytearray((tmp_path / "scene.mp4").read_bytes())
    start, end = int(len(data) * 0.45), int(len(data) * 0.55)
    data[start:end] = b"\xff" * (end - start)
    (tmp_path / "corrupt.mp4").write_bytes(bytes(data))
    accepted = upload(video_api, tmp_path / "corrupt.mp4", fps=2)
    assert accepted.status_code == 202, accepted.text
    body = finished(video_api, accepted.json()["id"])
    assert body["status"] == "failed" and body["error"]["code"] == "invalid_video", body
    assert body["error"]["message"].startswith("segment 1 (1.5 s to 3.2 s) does not decode")


def test_deleting_a_video_cancels_its_segments_and_erases_it(
    system: Stack, video_api: str, tmp_path: Path
) -> None:
    make_video(tmp_path / "long.mp4", long_scene(20.0, fps=5, keyframe_every_s=1.0))
    video_id = upload(video_api, tmp_path / "long.mp4", fps=5).json()["id"]
    wait_until(lambda: bool(video(video_api, video_id)["tracks"]), 60, "the first partial tracks")
    partial = video(video_api, video_id)
    assert partial["status"] == "running", partial
    assert 1 <= partial["progress"]["segments_done"] < partial["progress"]["segments"] == 20
    deleted = requests.delete(f"{video_api}/videos/{video_id}", timeout=TIMEOUT)
    assert deleted.status_code == 200, deleted.text
    assert requests.get(f"{video_api}/videos/{video_id}", timeout=TIMEOUT).status_code == 404
    assert requests.delete(f"{video_api}/videos/{video_id}", timeout=TIMEOUT).status_code == 404
    redis = system.client()
    # The segments running when it was deleted stop at their next batch: they write nothing back.
    wait_until(
        lambda: not any(job.startswith(video_id.encode()) for job in redis.hkeys("facerest:running")),
        30,
        "running segments",
    )
    assert not list(redis.scan_iter(match=f"facerest:*{video_id}*"))
    assert not list((Path(system.env["FACEREST_DATA_DIR"]) / "videos").glob("*"))


def test_a_worker_killed_mid_video_costs_one_segment_and_the_video_completes(
    system: Stack, video_api: str, tmp_path: Path
) -> None:
    before = system.worker_names()
    # SCRFD alone (the segments' detector) loads in a fraction of the session worker's time.
    extra = system.start_worker(extra_env={"FACEREST_DETECTORS": "scrfd"})
    (extra_name,) = system.worker_names() - before
    redis = system.client()
    try:
        truth = make_video(tmp_path / "kill.mp4", long_scene(12.0, fps=5, keyframe_every_s=1.0))
        video_id = upload(video_api, tmp_path / "kill.mp4", fps=5).json()["id"]

        def held_by_extra() -> set[int]:
            running = cast(dict[bytes, bytes], redis.hgetall("facerest:running"))
            prefix = f"{video_id}."
            return {
                int(job.decode().removeprefix(prefix))
                for job, worker in running.items()
                if job.decode().startswith(prefix) and worker.decode() == extra_name
            }

        wait_until(lambda: bool(held_by_extra()), 60, "a segment on the extra worker")
        extra.kill()
        # Its claims stay until the reapers see its heartbeat expire: what it held when it died.
        victims = held_by_extra()
    finally:
        extra.stop()
    body = finished(video_api, video_id, within_s=120)
    assert body["status"] == "done", body
    assert body["progress"]["segments_done"] == body["progress"]["segments"] == 12
    assert body["progress"]["frames_done"] == truth.frames
    # The segments the killed worker held ran again (their second delivery); every other once.
    attempts = {i: int(redis.hget(f"facerest:job:{video_id}.{i}", "attempts") or 0) for i in range(12)}
    assert {i for i, count in attempts.items() if count == 2} == victims
    assert all(count == 1 for i, count in attempts.items() if i not in victims)
