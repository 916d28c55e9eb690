"""A worker's memory comes back after the largest photo with max_size 0 (no resizing)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import psutil

from deploy.launcher import Stack
from testkit.photos import GROUP_PHOTOS, scaled_photo
from tests.client import extract
from tests.faces import FACES_IN

MiB = 1024 * 1024
# The bound: back within 100 MB of the level before the request.
ALLOWED_GROWTH_MIB = 100
PHOTO_SIZE = (7360, 4912)  # 36 MP, under the default FACEREST_MAX_IMAGE_PIXELS


def _rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / MiB


def test_worker_rss_returns_to_its_level_after_a_36_mp_photo_with_max_size_0(system: Stack) -> None:
    worker = system.service("worker")
    normal = GROUP_PHOTOS["t1.jpg"].read_bytes()
    large = scaled_photo("t1.jpg", PHOTO_SIZE)
    # Normal load first, a few jobs at once: the recognizer's batch buffers belong to the
    # worker's steady state, not to the large photo.
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            assert {
                r.status_code for r in pool.map(lambda _: extract(system.api_url, [normal]), range(4))
            } == {200}
    time.sleep(1)
    before = _rss_mib(worker.pid)

    answer = extract(system.api_url, [large], timeout=120, max_size=0, api_ver="2")
    assert answer.status_code == 200, answer.text
    (image,) = answer.json()["data"]
    assert image["size"] == list(PHOTO_SIZE) and len(image["faces"]) == FACES_IN["t1.jpg"]
    # Full-size px: the faces of t1.jpg (1280 px wide) times 5.75.
    assert max(face["bbox"][2] for face in image["faces"]) > 0.5 * PHOTO_SIZE[0]

    # The answer leaves the worker before it trims its heap: give it a few seconds.
    deadline = time.monotonic() + 10
    after = _rss_mib(worker.pid)
    while after - before > ALLOWED_GROWTH_MIB and time.monotonic() < deadline:
        time.sleep(0.25)
        after = _rss_mib(worker.pid)
    assert after - before <= ALLOWED_GROWTH_MIB, f"worker RSS {before:.0f} MiB before, {after:.0f} MiB after"
