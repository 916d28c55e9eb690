"""The Python client (client/, facerest_client) against the running system, sync and asyncio."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from facerest_client import (
    AsyncFaceRest,
    Compacted,
    ExtractResult,
    FaceRest,
    FaceRestError,
    Reindexed,
    RetryPolicy,
)
from PIL import Image

from deploy.launcher import stack
from testkit.photos import GROUP_PHOTOS
from tests.faces import FACES_IN
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M

T1 = GROUP_PHOTOS["t1.jpg"]
YAOMING = GROUP_PHOTOS["yaoming.jpg"]


def test_extract_in_msgpack_and_json_gives_the_same_typed_faces(api: str) -> None:
    with FaceRest(api) as packed, FaceRest(api, use_msgpack=False) as plain:
        first = packed.extract([T1, YAOMING.read_bytes()], return_landmarks=True, extract_ga=True)
        second = plain.extract([T1], return_landmarks=True)
    assert [len(image.faces) for image in first.images] == [FACES_IN["t1.jpg"], FACES_IN["yaoming.jpg"]]
    assert first.recognizer is not None and first.recognizer.name == ARCFACE_MBF.name
    face = first.images[0].faces[0]
    assert face.vec is not None and len(face.vec) == 512 and abs(np.linalg.norm(face.vec) - 1) < 1e-3
    assert face.landmarks is not None and len(face.landmarks) == 5
    assert face.gender in {"female", "male"} and face.age is not None
    assert first.images[0].size == (1280, 886)
    assert [f.bbox for f in first.images[0].faces] == [f.bbox for f in second.images[0].faces]


def test_a_bad_image_is_reported_per_image(api: str) -> None:
    with FaceRest(api) as client:
        result = client.extract([b"not an image", YAOMING])
    bad, good = result.images
    assert not bad.ok and bad.error is not None and bad.error.code == "invalid_image"
    assert good.ok and len(good.faces) == FACES_IN["yaoming.jpg"]


def test_errors_raise_with_the_service_code(api: str) -> None:
    with FaceRest(api) as client, pytest.raises(FaceRestError) as raised:
        client.extract([T1], detector="nosuch")
    assert raised.value.status == 400 and raised.value.code == "model_not_loaded"


def test_asyncio_client_extracts_concurrently_and_polls_jobs(api: str) -> None:
    async def run() -> None:
        async with AsyncFaceRest(api) as client:
            results = await asyncio.gather(*(client.extract([YAOMING]) for _ in range(3)))
            assert [len(r.images[0].faces) for r in results] == [FACES_IN["yaoming.jpg"]] * 3
            job = await client.submit([T1])
            assert job.status == "queued"
            done = await client.result(job.id, wait_s=20)
            assert done.status == "done" and isinstance(done.result, ExtractResult)
            assert len(done.result.images[0].faces) == FACES_IN["t1.jpg"]
            info = await client.info()
            assert info.det_name == SCRFD_500M.name and info.rec_name == ARCFACE_MBF.name

    asyncio.run(run())


def test_draw_returns_the_photo_drawn(api: str) -> None:
    with FaceRest(api) as client:
        png = client.draw(T1, draw_ga=True)
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.size == (1280, 886)


def test_recognition_through_the_client_in_msgpack_json_and_multipart(api: str) -> None:
    """Enroll in MessagePack (raw bytes), recognize in JSON (base64), enroll a multipart upload:
    one decoder reads all three, as for /extract."""
    with FaceRest(api) as packed, FaceRest(api, use_msgpack=False) as plain:
        enrolled = packed.enroll("client-people", "yao", [YAOMING])
        assert enrolled.faces[0].subject == "yao" and enrolled.faces[0].new
        upload = httpx.post(
            f"{api}/collections/client-people/subjects/yao/faces",
            files={"file": ("yao.jpg", YAOMING.read_bytes(), "image/jpeg")},
            data={"face": "only"},
            timeout=60,
        )
        assert upload.status_code == 201, upload.text
        assert upload.json()["faces"][0]["id"] == enrolled.faces[0].id  # the same photo: not added
        recognized = plain.recognize(
            "client-people", [YAOMING, T1], limit=1, return_landmarks=True, extract_ga=True
        )
        (yao,) = recognized.images[0].faces
        assert yao.subject == "yao" and yao.similarity is not None and yao.similarity > recognized.threshold
        assert yao.landmarks is not None and len(yao.landmarks) == 5 and yao.gender == "male"
        assert yao.norm is not None and yao.norm > 0 and yao.age is not None
        assert all(face.subject is None for face in recognized.images[1].faces)
        assert len(recognized.images[1].faces) == FACES_IN["t1.jpg"]
        assert packed.verify([YAOMING], collection="client-people", subject="yao").same
        assert not packed.verify([YAOMING, T1]).same
        (collection,) = [c for c in packed.collections() if c.name == "client-people"]
        assert (collection.subjects, collection.faces) == (1, 1)
        assert [s.subject for s in packed.subjects("client-people").subjects] == ["yao"]
        face_id = packed.subject("client-people", "yao").faces[0].id
        assert packed.thumbnail("client-people", face_id)[:2] == b"\xff\xd8"
        job = packed.reindex("client-people")
        reindexed = packed.result(job.id, wait_s=30)
        assert reindexed.status == "done" and isinstance(reindexed.result, Reindexed)
        assert reindexed.result.faces == 1
        assert packed.delete_face("client-people", face_id) == 1
        compacted = packed.result(packed.compact("client-people").id, wait_s=30)
        assert compacted.status == "done" and isinstance(compacted.result, Compacted)
        assert (compacted.result.faces, compacted.result.log_flushed) == (0, True)  # SQLite
        assert compacted.result.redis_rewritten  # the session's Redis keeps an AOF
        assert packed.delete_collection("client-people") == 1
        with pytest.raises(FaceRestError) as raised:
            packed.recognize("client-people", [YAOMING])
        assert raised.value.status == 404 and raised.value.code == "collection_not_found"


# Requests whose last segment is a dot segment, as sent by a client that does not remove them
# (httpx does: DELETE .../subjects/.. became DELETE /collections/victim3), literal and
# percent-encoded (Werkzeug decodes %2e before routing). None may reach the gallery.
DOT_SEGMENTS = [
    ("DELETE", "/collections/victim3/subjects/.."),
    ("DELETE", "/collections/victim3/subjects/%2e%2e"),
    ("DELETE", "/collections/victim3/subjects/."),
    ("GET", "/collections/victim3/subjects/%2E"),
    ("PATCH", "/collections/victim3/subjects/%2E%2E"),
    ("DELETE", "/collections/victim3/faces/.."),
    ("DELETE", "/collections/victim3/faces/%2E%2e"),
    ("GET", "/collections/victim3/faces/%2e/thumbnail"),
    ("DELETE", "/collections/.."),
    ("DELETE", "/collections/%2e%2e"),
    ("POST", "/collections/%2e%2e/compact"),
]


def test_the_service_never_takes_a_dot_segment_for_a_name_or_face_id(api: str) -> None:
    with FaceRest(api) as client:
        client.enroll("victim3", "ann", [YAOMING])
    address = urlsplit(api)
    answers = []
    for method, path in DOT_SEGMENTS:
        connection = http.client.HTTPConnection(address.netloc, timeout=30)
        try:
            body = json.dumps({"subject": "x"}) if method in {"PATCH", "POST"} else None
            connection.request(method, path, body=body, headers={"Content-Type": "application/json"})
            reply = connection.getresponse()
            answers.append((method, path, reply.status, json.loads(reply.read())["code"]))
        finally:
            connection.close()
    assert answers == [(method, path, 422, "validation_error") for method, path in DOT_SEGMENTS]
    with FaceRest(api) as client:  # nothing was deleted
        assert [s.subject for s in client.subjects("victim3").subjects] == ["ann"]
        assert client.delete_collection("victim3") == 1


class Recording(httpx.BaseTransport):
    """The real transport, noting each answer's status and the Idempotency-Key sent."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.seen: list[tuple[int, str | None]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        self.seen.append((response.status_code, request.headers.get("Idempotency-Key")))
        return response

    def close(self) -> None:
        self.inner.close()


def test_retries_after_503_with_retry_after_and_one_idempotency_key(tmp_path: Path) -> None:
    with stack(tmp_path, max_queue_depth="1", retry_after_s="1") as running:
        running.start_api()  # no worker yet: the first job stays queued and fills the queue
        with FaceRest(running.api_url) as client:
            assert client.submit([YAOMING]).status == "queued"
        transport = Recording()
        # Retry-After is 1 s: enough attempts to outlast a worker's start (models load first).
        patient = RetryPolicy(attempts=120, max_delay_s=1.0)
        outcome: list[object] = []

        def call() -> None:
            with FaceRest(running.api_url, retry=patient, transport=transport) as client:
                outcome.append(client.extract([T1]))

        caller = threading.Thread(target=call)
        caller.start()
        while not transport.seen:  # the first attempt has been refused before the worker starts
            caller.join(0.1)
        running.start_worker()
        caller.join(120)
        assert not caller.is_alive()
    (result,) = outcome
    assert isinstance(result, ExtractResult) and len(result.images[0].faces) == FACES_IN["t1.jpg"]
    statuses = [status for status, _ in transport.seen]
    assert statuses[0] == 503 and statuses[-1] == 200 and set(statuses[:-1]) == {503}
    assert len({key for _, key in transport.seen}) == 1 and transport.seen[0][1]
