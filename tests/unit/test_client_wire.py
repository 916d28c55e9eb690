"""facerest_client without a server: request bodies, Retry-After, the retry loop (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time

import httpx
import msgpack
import pytest
from facerest_client import (
    AsyncFaceRest,
    Callback,
    Compacted,
    Enrollment,
    ExtractResult,
    FaceRest,
    FaceRestError,
    InvalidName,
    Job,
    Recognition,
    Reindexed,
    RetryPolicy,
    Verification,
)
from facerest_client._calls import _segment
from facerest_client._wire import body_call, parse_retry_after

JPEG = b"\xff\xd8\xff raw"
FACE_ID = "0123456789abcdef0123456789abcdef"  # the form of the service's face ids (uuid4 hex)
ANSWER = {
    "took": {"total_ms": 12.5},
    "data": [
        {
            "status": "ok",
            "took_ms": 3.0,
            "size": [640, 480],
            "faces": [
                {
                    "num_det": 0,
                    "prob": 0.9,
                    "bbox": [10, 20, 110, 140],
                    "bbox_float": [10.4, 19.6, 110.2, 140.0],
                    "size": 100,
                    "landmarks": None,
                    "vec": [0.6, 0.8],
                    "norm": 21.5,
                    "facedata": None,
                    "mask_probs": None,
                }
            ],
        }
    ],
}


def test_msgpack_body_carries_raw_bytes_and_an_idempotency_key() -> None:
    call = body_call("/extract", {"threshold": 0.5}, [JPEG], ["http://a.example/b.jpg"], use_msgpack=True)
    assert call.headers["Content-Type"] == "application/msgpack"
    assert call.headers["Accept"] == "application/x-msgpack"
    assert len(call.headers["Idempotency-Key"]) == 32
    assert call.content is not None
    body = msgpack.unpackb(call.content)
    assert body == {"images": {"data": [JPEG], "urls": ["http://a.example/b.jpg"]}, "threshold": 0.5}


def test_json_body_carries_base64() -> None:
    call = body_call("/extract", {}, [JPEG], [], use_msgpack=False, idempotent=False)
    assert call.content is not None and "Idempotency-Key" not in call.headers
    assert json.loads(call.content)["images"]["data"] == [base64.b64encode(JPEG).decode()]


def test_retry_after_as_seconds_or_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None and 28 <= seconds <= 31
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 -0000") == pytest.approx(
        784111777 - time.time(), abs=2
    )
    policy = RetryPolicy(backoff_s=0.5, max_delay_s=10)
    assert policy.delay(0, "3") == 3.0 and policy.delay(2, None) == 2.0 and policy.delay(0, "600") == 10


def _server(statuses: list[int], seen: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = statuses[len(seen) - 1]
        if status != 200:
            body = {"code": "overloaded", "message": "full", "retry_after_s": 0}
            return httpx.Response(status, json=body, headers={"Retry-After": "0"})
        return httpx.Response(
            200, content=msgpack.packb(ANSWER), headers={"Content-Type": "application/x-msgpack"}
        )

    return httpx.MockTransport(answer)


def test_sync_client_retries_503_with_the_same_key_and_body() -> None:
    seen: list[httpx.Request] = []
    with FaceRest("http://facerest.test", transport=_server([503, 503, 200], seen)) as client:
        result = client.extract([JPEG])
    assert len(seen) == 3
    assert len({r.headers["Idempotency-Key"] for r in seen}) == 1
    assert len({r.content for r in seen}) == 1
    (face,) = result.images[0].faces
    assert face.bbox == (10.4, 19.6, 110.2, 140.0) and face.vec == (0.6, 0.8)
    assert result.images[0].size == (640, 480) and result.total_ms == 12.5


def test_sync_client_gives_up_after_its_attempts_with_the_service_error() -> None:
    seen: list[httpx.Request] = []
    transport = _server([503, 503], seen)
    client = FaceRest("http://facerest.test", transport=transport, retry=RetryPolicy(attempts=2))
    with client, pytest.raises(FaceRestError) as raised:
        client.extract([JPEG])
    assert raised.value.status == 503 and raised.value.code == "overloaded" and len(seen) == 2


def test_async_client_retries_too() -> None:
    seen: list[httpx.Request] = []

    async def run() -> int:
        async with AsyncFaceRest("http://facerest.test", transport=_server([429, 200], seen)) as client:
            result = await client.extract([JPEG])
            return len(result.images[0].faces)

    assert asyncio.run(run()) == 1 and len(seen) == 2


RECOGNIZER = {"key": "arcface", "name": "w600k_mbf", "version": "1", "license": "non-commercial"}
RECOGNIZE_ANSWER = {
    "took": {"total_ms": 20.0, "worker_ms": 15.0},
    "collection": "staff",
    "threshold": 0.3,
    "recognizer": RECOGNIZER,
    "data": [
        {
            "status": "ok",
            "took_ms": 14.0,
            "faces": [
                {
                    "bbox": [1.5, 2.0, 50.0, 60.0],
                    "prob": 0.8,
                    "subject": "ann",
                    "similarity": 0.7,
                    "matches": [{"subject": "ann", "similarity": 0.7}, {"subject": "bob", "similarity": 0.1}],
                },
                {"bbox": [60, 2, 90, 40], "prob": 0.7, "subject": None, "similarity": 0.2, "matches": []},
            ],
        },
        {"status": "error", "took_ms": 0.0, "error": {"code": "invalid_image", "message": "images.data[1]"}},
    ],
}
ENROLL_ANSWER = {
    "collection": "staff",
    "faces": [
        {
            "id": FACE_ID,
            "subject": "ann",
            "bbox": [1.0, 2.0, 3.0, 4.0],
            "prob": 0.9,
            "faces_in_image": 2,
            "new": False,
            "thumbnail_url": f"/collections/staff/faces/{FACE_ID}/thumbnail",
        }
    ],
    "took": {"total_ms": 9.0},
    "recognizer": RECOGNIZER,
}
VERIFY_ANSWER = {
    "same": True,
    "similarity": 0.61,
    "threshold": 0.3,
    "faces": [[1, 2, 3, 4]],
    "took": {"total_ms": 8.0},
    "recognizer": RECOGNIZER,
}
COLLECTIONS_ANSWER = {
    "collections": [
        {
            "collection": "staff",
            "recognizer": {**RECOGNIZER, "dimension": 512},
            "created": 1.5,
            "subjects": 2,
            "faces": 3,
        }
    ]
}
SUBJECTS_ANSWER = {
    "subjects": [{"subject": "ann", "faces": 2, "created": 1.0}],
    "offset": 0,
    "limit": 1,
    "next": "/collections/staff/subjects?offset=1&limit=1",
}


def _recognition_server(seen: list[httpx.Request]) -> httpx.MockTransport:
    """Answers by method and path, as the service would; remembers every request."""
    answers = {
        ("POST", "/collections/staff/subjects/ann/faces"): (201, ENROLL_ANSWER),
        ("POST", "/collections/staff/recognize"): (200, RECOGNIZE_ANSWER),
        ("POST", "/verify"): (200, VERIFY_ANSWER),
        ("POST", "/collections/staff/reindex"): (202, {"id": "j1", "status": "queued", "status_url": "/r"}),
        ("POST", "/collections/staff/compact"): (202, {"id": "j2", "status": "queued", "status_url": "/r"}),
        ("GET", "/collections"): (200, COLLECTIONS_ANSWER),
        ("GET", "/collections/staff/subjects"): (200, SUBJECTS_ANSWER),
        ("GET", "/collections/staff/subjects/ann"): (
            200,
            {"collection": "staff", "subject": "ann", "faces": ENROLL_ANSWER["faces"]},
        ),
        ("DELETE", "/collections/staff/subjects/ann"): (200, {"deleted": 2}),
        ("PATCH", "/collections/staff/subjects/ann"): (200, {"subject": "anna", "faces": 2}),
        ("DELETE", f"/collections/staff/faces/{FACE_ID}"): (200, {"deleted": 1}),
        ("DELETE", "/collections/staff"): (200, {"deleted": 1}),
    }

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body = answers[(request.method, request.url.path)]
        return httpx.Response(status, json=body)

    return httpx.MockTransport(answer)


def test_enroll_recognize_and_verify_send_images_like_extract_and_parse_typed_answers() -> None:
    seen: list[httpx.Request] = []
    with FaceRest("http://facerest.test", transport=_recognition_server(seen)) as client:
        enrolled = client.enroll("staff", "ann", [JPEG], face="only")
        recognized = client.recognize("staff", [JPEG], ["http://a.example/b.jpg"], limit=2, threshold=0.3)
        verified = client.verify([JPEG], collection="staff", subject="ann")
    bodies = [msgpack.unpackb(r.content) for r in seen]
    assert all(r.headers["Content-Type"] == "application/msgpack" for r in seen)
    assert all(len(r.headers["Idempotency-Key"]) == 32 for r in seen)
    assert bodies[0] == {"images": {"data": [JPEG], "urls": []}, "face": "only"}
    assert bodies[1]["images"]["urls"] == ["http://a.example/b.jpg"]
    assert (bodies[1]["limit"], bodies[1]["threshold"]) == (2, 0.3)
    assert (bodies[2]["collection"], bodies[2]["subject"]) == ("staff", "ann")

    (face,) = enrolled.faces
    assert (face.id, face.subject, face.new, face.faces_in_image) == (FACE_ID, "ann", False, 2)
    assert enrolled.recognizer.name == "w600k_mbf" and enrolled.total_ms == 9.0
    named, stranger = recognized.images[0].faces
    assert named.subject == "ann" and named.bbox == (1.5, 2.0, 50.0, 60.0)
    assert [m.subject for m in named.matches] == ["ann", "bob"]
    assert stranger.subject is None and stranger.similarity == 0.2
    bad = recognized.images[1]
    assert not bad.ok and bad.error is not None and bad.error.code == "invalid_image"
    assert verified.same and verified.similarity == 0.61 and verified.faces == ((1.0, 2.0, 3.0, 4.0),)


def test_collection_listing_paging_and_deletes() -> None:
    seen: list[httpx.Request] = []
    with FaceRest("http://facerest.test", transport=_recognition_server(seen)) as client:
        (collection,) = client.collections()
        page = client.subjects("staff", offset=0, limit=1)
        subject = client.subject("staff", "ann")
        renamed = client.rename_subject("staff", "ann", "anna")
        deleted = (
            client.delete_subject("staff", "ann"),
            client.delete_face("staff", FACE_ID),
            client.delete_collection("staff"),
        )
        job = client.reindex("staff")
        compaction = client.compact("staff")
    assert collection.name == "staff" and collection.recognizer.dimension == 512
    assert (collection.subjects, collection.faces) == (2, 3)
    assert [s.subject for s in page.subjects] == ["ann"] and page.next_offset == 1
    assert seen[1].url.params["limit"] == "1"
    assert subject.faces[0].thumbnail_url == f"/collections/staff/faces/{FACE_ID}/thumbnail"
    assert renamed == "anna" and json.loads(seen[3].content) == {"subject": "anna"}
    assert deleted == (2, 1, 1)
    assert job.id == "j1" and job.status == "queued" and compaction.id == "j2"
    assert [r.url.path for r in seen[-2:]] == ["/collections/staff/reindex", "/collections/staff/compact"]
    assert all(r.content == b"{}" and "Idempotency-Key" in r.headers for r in seen[-2:])


def test_jobs_carry_each_endpoint_s_typed_result() -> None:
    reindexed = {
        "collection": "staff",
        "faces": 3,
        "dropped": 0,
        "took": {"total_ms": 1},
        "recognizer": RECOGNIZER,
    }
    cases = [
        (ANSWER, ExtractResult),
        (RECOGNIZE_ANSWER, Recognition),
        (ENROLL_ANSWER, Enrollment),
        (VERIFY_ANSWER, Verification),
        (reindexed, Reindexed),
        ({"collection": "staff", "faces": 2, "log_flushed": False, "took": {"total_ms": 1}}, Compacted),
    ]
    for body, kind in cases:
        job = Job.from_wire({"id": "j", "status": "done", "result": body})
        assert isinstance(job.result, kind)
    compacted = {"collection": "s", "faces": 2, "log_flushed": True, "redis_rewritten": True, "took": {}}
    assert Job.from_wire({"id": "j", "status": "done", "result": compacted}).result == Compacted(
        "s", 2, True, True
    )


def test_a_job_s_webhook_delivery_is_read_and_collection_jobs_can_ask_for_one() -> None:
    delivery = {"status": "retrying", "attempts": 2, "last_error": "the receiver answered HTTP 503"}
    job = Job.from_wire({"id": "j", "status": "done", "callback": delivery})
    assert job.callback == Callback("retrying", 2, "the receiver answered HTTP 503")
    assert Job.from_wire({"id": "j", "status": "queued"}).callback is None
    seen: list[httpx.Request] = []
    with FaceRest("http://facerest.test", transport=_recognition_server(seen)) as client:
        client.reindex("staff", callback_url="https://hooks.example/in")
        client.compact("staff", callback_url="https://hooks.example/in")
    assert [json.loads(r.content) for r in seen] == [{"callback_url": "https://hooks.example/in"}] * 2


def test_async_client_recognizes_in_json() -> None:
    seen: list[httpx.Request] = []

    async def run() -> tuple[str | None, int]:
        transport = _recognition_server(seen)
        async with AsyncFaceRest("http://facerest.test", use_msgpack=False, transport=transport) as client:
            recognized = await client.recognize("staff", [JPEG])
            deleted = await client.delete_subject("staff", "ann")
            return recognized.images[0].faces[0].subject, deleted

    assert asyncio.run(run()) == ("ann", 2)
    assert json.loads(seen[0].content)["images"]["data"] == [base64.b64encode(JPEG).decode()]


@pytest.mark.parametrize("junk", ["²", "1²", "٣", "①", "-1", "1.5", "soon", "Sun, 99 Nov 1994 08:49:37 GMT"])
def test_a_junk_retry_after_falls_back_to_the_backoff(junk: str) -> None:
    """str.isdigit() takes '²' and '٣', which float() refuses or misreads: ASCII digits only."""
    assert parse_retry_after(junk) is None
    assert RetryPolicy(backoff_s=0.25).delay(1, junk) == 0.5
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(
                503,
                json={"code": "overloaded", "message": "full"},
                headers=[(b"Retry-After", junk.encode())],  # as sent: UTF-8
            )
        return httpx.Response(
            200, content=msgpack.packb(ANSWER), headers={"Content-Type": "application/x-msgpack"}
        )

    retry = RetryPolicy(backoff_s=0.0)
    with FaceRest("http://facerest.test", retry=retry, transport=httpx.MockTransport(answer)) as client:
        assert len(client.extract([JPEG]).images[0].faces) == 1
    assert len(seen) == 2


# Calls that name what an app may take from its users; none may send anything.
REFUSED_CALLS = [
    ("delete_subject", ("victim3", "..")),  # httpx would send DELETE /collections/victim3
    ("delete_subject", ("victim3", ".")),
    ("delete_face", ("victim3", "..")),
    ("subject", ("victim3", ".")),  # would read the subject list
    ("delete_collection", ("..",)),
    ("subjects", ("a/b",)),
    ("enroll", ("staff", "../ann")),
    ("recognize", ("%2e%2e",)),
    ("thumbnail", ("staff", "x\x00y")),
    ("rename_subject", ("staff", "ann", "..")),
    ("compact", ("",)),
    ("result", ("..",)),
]


@pytest.mark.parametrize(("method", "args"), REFUSED_CALLS)
def test_names_and_ids_the_service_would_refuse_are_refused_before_sending(
    method: str, args: tuple[str, ...]
) -> None:
    seen: list[httpx.Request] = []
    with (
        FaceRest("http://facerest.test", transport=_recognition_server(seen)) as client,
        pytest.raises(InvalidName) as refused,
    ):
        getattr(client, method)(*args)
    assert isinstance(refused.value, ValueError) and "is not valid" in str(refused.value)

    async def run_async() -> None:
        async with AsyncFaceRest("http://facerest.test", transport=_recognition_server(seen)) as aio:
            with pytest.raises(InvalidName):
                await getattr(aio, method)(*args)

    asyncio.run(run_async())
    assert seen == []


def test_verify_refuses_a_bad_collection_or_subject_too() -> None:
    seen: list[httpx.Request] = []
    with FaceRest("http://facerest.test", transport=_recognition_server(seen)) as client:
        for collection, subject in (("..", "ann"), ("staff", "a/b")):
            with pytest.raises(InvalidName):
                client.verify([JPEG], collection=collection, subject=subject)
    assert seen == []


def test_every_path_segment_is_percent_encoded() -> None:
    """Checked names need no escaping; should the rule ever allow more, nothing becomes path."""
    assert _segment("a/b?c#d%2e;e") == "a%2Fb%3Fc%23d%252e%3Be"
