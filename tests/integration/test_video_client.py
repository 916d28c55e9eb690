"""The Python client and ``facerest video`` against the real service (the session's Redis, worker
and API): a video made here with PyAV (testkit/video.py) is uploaded from disk, followed with
progress to the end, its people named from their portraits, and a cancelled video is gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from facerest_client import FaceRest, FaceRestError, Video
from facerest_client.cli import EXIT_OK
from facerest_client.cli import main as cli_main

from testkit.video import PEOPLE, VideoTruth, default_scene, make_video, portrait

pytestmark = pytest.mark.slow
COLLECTION = "client-video"


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, VideoTruth]:
    path = tmp_path_factory.mktemp("video") / "scene.mp4"
    return path, make_video(path, default_scene())


@pytest.fixture(scope="module")
def client(api: str) -> Iterator[FaceRest]:
    """A client, and a collection of the scene's people enrolled from their portraits."""
    with FaceRest(api) as opened:
        for label in PEOPLE:
            opened.enroll(COLLECTION, label, [portrait(label)])
        yield opened


def test_cli_uploads_a_video_shows_progress_and_prints_who_appears_when(
    api: str, scene: tuple[Path, VideoTruth], capsys: pytest.CaptureFixture[str], client: FaceRest
) -> None:
    path, truth = scene
    assert (
        cli_main(["--url", api, "video", str(path), "--collection", COLLECTION, "--interval", "0.5"])
        == EXIT_OK
    )
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].endswith("tracks in 0:06.0")
    # Every person of the scene is named on a line of their own; t1-0 twice (two shots).
    named = [line.split()[-2] for line in lines[1:]]
    assert sorted(set(named)) == sorted({t.label for t in truth.tracks()})
    assert named.count("t1-0") == 2
    assert "1/1 segments" in err and "video " in err


def test_client_follows_progress_and_a_cancelled_video_is_gone(
    client: FaceRest, scene: tuple[Path, VideoTruth]
) -> None:
    path, _ = scene
    states: list[Video] = []
    submitted = client.submit_video(path, fps=1, embedding=True)
    done = client.wait_video(submitted.id, progress=states.append, interval_s=0.5)
    assert done.status == "done" and done.duration_s == pytest.approx(6.0)
    assert [s.progress.segments_done for s in states] == sorted(s.progress.segments_done for s in states)
    assert done.progress.frames_done == done.progress.frames == 6
    assert all(t.subject is None and t.embedding is not None and len(t.embedding) == 512 for t in done.tracks)
    thumbnail = client.video_thumbnail(done.tracks[0].best.thumbnail_url)
    assert thumbnail[:3] == b"\xff\xd8\xff"
    client.cancel_video(submitted.id)
    with pytest.raises(FaceRestError) as gone:
        client.video(submitted.id)
    assert (gone.value.status, gone.value.code) == (404, "video_not_found")
