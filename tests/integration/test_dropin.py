"""The drop-in server (api/compat/) with the real clients, unchanged: deepstack-python (what Home
Assistant's deepstack_face uses) and Exadel's compreface-sdk, on the session system's worker and
the real models; wire shapes per endpoint as each protocol documents them; and one collection
seen through both protocols and through /collections.

People: the leftmost and the rightmost person of the group photo t1.jpg (a crop around each face),
another photo of each (the crop mirrored and rescaled), and Yao Ming (yaoming.jpg), never
enrolled: the stranger.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import pytest
import requests
from compreface import CompreFace
from compreface.service import RecognitionService
from deepstack.core import DeepstackException, DeepstackFace
from flask import Flask
from pydantic import TypeAdapter
from werkzeug.routing import Rule

from api.compat.app import BLUEPRINTS, openapi_document
from api.compat.schemas import CompreFaceResult, DeepstackAnswer
from deploy.launcher import Stack
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from tests.client import b64, extract

T1 = GROUP_PHOTOS["t1.jpg"]
YAO = GROUP_PHOTOS["yaoming.jpg"].read_bytes()
COLLECTION = "dropin"  # FACEREST_COMPAT_COLLECTION here: DeepStack's and a keyless CompreFace's
TIMEOUT = 120
# The clients' default lines (docs/integrations.md): a true match clears the highest, a stranger
# stays under the lowest.
HIGHEST_LINE = 0.67  # DeepStack recognize's min_confidence default
LOWEST_LINE = 0.40  # Double Take's "unknown" (40 of 100)


def crop_around(path: Path, box: list[float]) -> bytes:
    """A photo of one person: the face with a margin of its own size on every side."""
    image = read_rgb(path)
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    left, top = max(0, round(x1 - w)), max(0, round(y1 - h))
    right, bottom = min(image.shape[1], round(x2 + w)), min(image.shape[0], round(y2 + h))
    return encode(np.ascontiguousarray(image[top:bottom, left:right]))


def another_photo(photo: bytes) -> bytes:
    """The same person in another picture: mirrored left-right and scaled by 1.3."""
    decoded = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    image = np.ascontiguousarray(decoded[:, ::-1])
    size = (round(image.shape[1] * 1.3), round(image.shape[0] * 1.3))
    ok, data = cv2.imencode(".jpg", cv2.resize(image, size))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def people(api: str) -> dict[str, bytes]:
    """Two people of t1.jpg, the leftmost and the rightmost, one photo each."""
    reply = extract(api, [T1.read_bytes()], api_ver="2", extract_embedding=False)
    boxes = sorted(face["bbox"] for face in reply.json()["data"][0]["faces"])
    return {"alice": crop_around(T1, boxes[0]), "bob": crop_around(T1, boxes[-1])}


@pytest.fixture(scope="module")
def dropin(system: Stack) -> Iterator[str]:
    server = system.start_compat(extra_env={"FACEREST_COMPAT_COLLECTION": COLLECTION}, processes=1)
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def port(dropin: str) -> int:
    return int(dropin.rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def enrolled(dropin: str, port: int, people: dict[str, bytes]) -> DeepstackFace:
    """alice and bob enrolled through deepstack-python, as Home Assistant's register service does."""
    client = DeepstackFace(ip="127.0.0.1", port=port, timeout=TIMEOUT)
    for name, photo in people.items():
        assert client.register(name, photo) == "face added"
    return client


@pytest.fixture(scope="module")
def compreface(port: int) -> RecognitionService:
    # With API keys off, a CompreFace key names the collection: this one is DeepStack's.
    return CompreFace("http://127.0.0.1", str(port)).init_face_recognition(COLLECTION)


def create_rules() -> list[Rule]:
    """The drop-in blueprints' URL rules, as an app registers them."""
    app = Flask("rules")
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return list(app.url_map.iter_rules())


def form(dropin: str, path: str, files: dict[str, bytes] | None = None, **data: Any) -> requests.Response:
    return requests.post(f"{dropin}/v1/vision/face{path}", files=files, data=data, timeout=TIMEOUT)


# DeepStack, through its client.


def test_deepstack_client_recognizes_a_registered_person_and_not_a_stranger(
    enrolled: DeepstackFace, people: dict[str, bytes]
) -> None:
    found = enrolled.recognize(another_photo(people["alice"]))
    assert [p["userid"] for p in found] == ["alice"]
    assert found[0]["confidence"] >= HIGHEST_LINE, found
    stranger = enrolled.recognize(YAO)
    assert [(p["userid"], p["confidence"]) for p in stranger] == [("unknown", 0.0)]
    assert sorted(enrolled.get_registered_faces()) == ["alice", "bob"]


def test_deepstack_register_adds_faces_and_never_replaces_them(
    enrolled: DeepstackFace, api: str, people: dict[str, bytes]
) -> None:
    assert enrolled.register("bob", another_photo(people["bob"])) == "face added"
    faces = requests.get(f"{api}/collections/{COLLECTION}/subjects/bob", timeout=10).json()["faces"]
    assert len(faces) == 2


# DeepStack / CodeProject.AI wire shapes (DeepStack's face API docs; CodeProject.AI's extra fields).


def test_deepstack_detect_answers_boxes_with_detector_confidence(dropin: str) -> None:
    reply = form(dropin, "", {"image": T1.read_bytes()}, min_confidence="0.5")
    assert reply.status_code == 200
    body = reply.json()
    assert body["success"] is True and body["code"] == 200
    assert body["count"] == 6 == len(body["predictions"])
    assert set(body) == {"success", "predictions", "count", "message", "inferenceMs", "processMs", "code"}
    TypeAdapter(DeepstackAnswer).validate_python(body)
    for p in body["predictions"]:
        assert set(p) == {"confidence", "x_min", "y_min", "x_max", "y_max"}
        assert 0.5 <= p["confidence"] <= 1 and p["x_min"] < p["x_max"] and p["y_min"] < p["y_max"]
        assert all(isinstance(p[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))


def test_deepstack_recognize_match_list_delete_shapes(
    enrolled: DeepstackFace, dropin: str, people: dict[str, bytes]
) -> None:
    group = form(dropin, "/recognize", {"image": T1.read_bytes()}).json()
    assert group["success"] is True and group["count"] == 6
    named = sorted(p["userid"] for p in group["predictions"] if p["userid"] != "unknown")
    assert named == ["alice", "bob"]  # the four others are unknown, each once
    same = form(dropin, "/match", {"image1": people["alice"], "image2": another_photo(people["alice"])})
    other = form(dropin, "/match", {"image1": people["alice"], "image2": YAO})
    assert same.json()["similarity"] >= HIGHEST_LINE > LOWEST_LINE > other.json()["similarity"]
    assert form(dropin, "/register", {"image": YAO}, userid="yao").json()["success"] is True
    assert "yao" in form(dropin, "/list").json()["faces"]
    deleted = form(dropin, "/delete", userid="yao").json()
    assert deleted["success"] is True and deleted["count"] == 1
    assert "yao" not in form(dropin, "/list").json()["faces"]


def test_deepstack_errors_are_success_false_with_deepstack_statuses(dropin: str) -> None:
    no_image = form(dropin, "/recognize", min_confidence="0.6")
    assert no_image.status_code == 400
    assert no_image.json() == {"success": False, "error": "no image in the request", "code": 400}
    no_user = form(dropin, "/register", {"image": YAO})
    assert (no_user.status_code, no_user.json()["error"]) == (400, "userid not specified")
    blank = encode(np.full((200, 200, 3), 128, np.uint8))
    no_face = form(dropin, "/register", {"image": blank}, userid="nobody")
    assert no_face.status_code == 400 and no_face.json()["success"] is False
    assert "no face" in no_face.json()["error"]
    not_an_image = form(dropin, "/recognize", {"image": b"not an image"})
    assert not_an_image.status_code == 400 and not_an_image.json()["success"] is False
    assert "images.data[0]" in not_an_image.json()["error"]
    with pytest.raises(DeepstackException, match="status code: 400"):
        DeepstackFace(ip="127.0.0.1", port=int(dropin.rsplit(":", 1)[1])).register("nobody", blank)


# CompreFace, through its SDK, on the collection DeepStack enrolled (cross-protocol).


def test_compreface_sdk_recognizes_whom_deepstack_enrolled(
    enrolled: DeepstackFace, compreface: RecognitionService, people: dict[str, bytes]
) -> None:
    found = compreface.recognize(another_photo(people["bob"]), {"prediction_count": 2})
    (face,) = found["result"]
    assert face["subjects"][0]["subject"] == "bob" and face["subjects"][0]["similarity"] >= HIGHEST_LINE
    assert face["subjects"][1]["similarity"] < LOWEST_LINE  # alice: another person
    assert set(face["box"]) == {"probability", "x_min", "y_min", "x_max", "y_max"}
    stranger = compreface.recognize(YAO, {"prediction_count": 1})["result"][0]
    assert stranger["subjects"][0]["similarity"] < LOWEST_LINE


def test_collections_api_recognizes_whom_deepstack_enrolled(
    enrolled: DeepstackFace, api: str, people: dict[str, bytes]
) -> None:
    reply = requests.post(
        f"{api}/collections/{COLLECTION}/recognize",
        files={"file": another_photo(people["alice"])},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200, reply.text
    (face,) = reply.json()["data"][0]["faces"]
    assert face["subject"] == "alice"


# CompreFace wire shapes (its REST API description).


def test_compreface_faces_and_subjects_round_trip(
    enrolled: DeepstackFace, compreface: RecognitionService, dropin: str, people: dict[str, bytes]
) -> None:
    faces = compreface.get_face_collection()
    before = faces.list()["total_elements"]  # the module's faces so far, whichever tests ran
    added = faces.add(another_photo(people["alice"]), "carol")
    assert set(added) == {"image_id", "subject"} and added["subject"] == "carol"
    assert len(added["image_id"]) == 32
    listed = faces.list()
    assert {"image_id": added["image_id"], "subject": "carol"} in listed["faces"]
    assert listed["total_elements"] == len(listed["faces"]) == before + 1 >= 3
    assert set(listed) == {"faces", "page_number", "page_size", "total_pages", "total_elements"}
    image = requests.get(
        f"{dropin}/api/v1/recognition/faces/{added['image_id']}/img",
        headers={"x-api-key": COLLECTION},
        timeout=10,
    )
    assert image.headers["Content-Type"] == "image/jpeg" and image.content[:2] == b"\xff\xd8"
    verified = faces.verify(another_photo(people["alice"]), added["image_id"])["result"][0]
    assert verified["subject"] == "carol" and verified["similarity"] >= HIGHEST_LINE
    subjects = compreface.get_subjects()
    assert "carol" in subjects.list()["subjects"]
    assert subjects.add("dave") == {"subject": "dave"}
    assert subjects.update("carol", "carla") == {"updated": True}
    assert faces.delete(added["image_id"]) == {"image_id": added["image_id"], "subject": "carla"}
    assert "carla" not in subjects.list()["subjects"]
    missing = subjects.delete("carla")
    assert missing["code"] == 42 and "carla" in missing["message"]  # SUBJECT_NOT_FOUND


def test_compreface_json_base64_bodies_and_deleting_a_whole_collection(
    dropin: str, people: dict[str, bytes]
) -> None:
    own = {"x-api-key": "cf-json"}  # keys off: its own collection
    base = f"{dropin}/api/v1/recognition"
    added = requests.post(
        f"{base}/faces?subject=frank", json={"file": b64(people["bob"])}, headers=own, timeout=TIMEOUT
    )
    assert added.status_code == 200 and added.json()["subject"] == "frank"
    found = requests.post(
        f"{base}/recognize?prediction_count=1",
        json={"file": b64(another_photo(people["bob"]))},
        headers=own,
        timeout=TIMEOUT,
    ).json()["result"][0]["subjects"]
    assert found[0]["subject"] == "frank" and found[0]["similarity"] >= HIGHEST_LINE
    bad = requests.post(
        f"{base}/recognize", data=b"{", headers={**own, "Content-Type": "application/json"}, timeout=10
    )
    assert bad.status_code == 400 and bad.json()["code"] == 0 and "not valid JSON" in bad.json()["message"]
    assert requests.delete(f"{base}/subjects", headers=own, timeout=10).json() == {"deleted": 1}
    assert requests.get(f"{base}/subjects", headers=own, timeout=10).json() == {"subjects": []}


def test_compreface_face_verify_compares_with_that_face_and_faces_page(
    dropin: str, port: int, people: dict[str, bytes]
) -> None:
    """A subject with two faces, alice's and Yao Ming's: /faces/{image_id}/verify compares with
    the face named, not the subject's best; GET /faces pages the collection's faces."""
    faces = CompreFace("http://127.0.0.1", str(port)).init_face_recognition("cf-exact").get_face_collection()
    alice = faces.add(people["alice"], "mixed")["image_id"]
    yao = faces.add(YAO, "mixed")["image_id"]
    probe = another_photo(people["alice"])
    assert faces.verify(probe, alice)["result"][0]["similarity"] >= HIGHEST_LINE
    assert faces.verify(probe, yao)["result"][0]["similarity"] < LOWEST_LINE
    own, listing = {"x-api-key": "cf-exact"}, f"{dropin}/api/v1/recognition/faces"
    second = requests.get(f"{listing}?page=1&size=1", headers=own, timeout=10).json()
    assert second["faces"] == [{"image_id": yao, "subject": "mixed"}]
    assert (second["total_pages"], second["total_elements"]) == (2, 2)
    gone = requests.delete(listing, headers=own, timeout=10)
    assert gone.json() == {"deleted": 2}
    assert faces.verify(probe, alice) == {"message": f"no face {alice!r}", "code": 11}


def test_compreface_verification_and_detection_with_plugins(port: int, people: dict[str, bytes]) -> None:
    sdk = CompreFace("http://127.0.0.1", str(port))
    verified = sdk.init_face_verification("any").verify(people["alice"], another_photo(people["alice"]))
    (pair,) = verified["result"]
    assert pair["face_matches"][0]["similarity"] >= HIGHEST_LINE
    assert set(pair["source_image_face"]["box"]) == {"probability", "x_min", "y_min", "x_max", "y_max"}
    detected = sdk.init_face_detection("any").detect(
        T1.read_bytes(), {"face_plugins": "age,gender,landmarks,calculator", "limit": 0}
    )
    faces = detected["result"]
    assert len(faces) == 6
    TypeAdapter(CompreFaceResult).validate_python(detected)
    for face in faces:
        assert face["gender"]["value"] in {"female", "male"} and 0 < face["age"]["low"] < 100
        assert len(face["landmarks"]) == 5 and len(face["embedding"]) == 512
        assert abs(float(np.linalg.norm(face["embedding"])) - 1) < 1e-3


def mirrored(photo: bytes) -> bytes:
    """The photo flipped left-right, nothing else changed."""
    decoded = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    ok, data = cv2.imencode(".png", np.ascontiguousarray(decoded[:, ::-1]))
    assert ok
    return data.tobytes()


def cf_post(port: int, path: str, photo: bytes, **args: Any) -> requests.Response:
    """A CompreFace request over plain HTTP, as Double Take sends it (compreface-sdk for Python
    refuses face_plugins=pose before sending: its list of plugins predates pose)."""
    return requests.post(
        f"http://127.0.0.1:{port}/api/v1/{path}",
        params=args,
        files={"file": photo},
        headers={"x-api-key": COLLECTION},
        timeout=TIMEOUT,
    )


def test_compreface_pose_plugin_turns_with_the_face(port: int) -> None:
    """pose is face quality's head pose: the same faces mirrored turn the other way (yaw and roll
    change sign, pitch stays), matched by their mirrored boxes."""
    photo = T1.read_bytes()
    width = read_rgb(T1).shape[1]
    faces = cf_post(port, "detection/detect", photo, face_plugins="pose").json()["result"]
    flipped = cf_post(port, "detection/detect", mirrored(photo), face_plugins="pose").json()["result"]
    assert len(faces) == len(flipped) == 6
    by_centre = {round((width - (f["box"]["x_min"] + f["box"]["x_max"]) / 2) / 10): f for f in flipped}
    turned = tilted = 0
    for face in faces:
        pose = face["pose"]
        assert set(pose) == {"pitch", "roll", "yaw"} and all(abs(v) < 90 for v in pose.values())
        other = by_centre[round((face["box"]["x_min"] + face["box"]["x_max"]) / 2 / 10)]["pose"]
        # The estimate is good to about 10 degrees (the detector's keypoints of a mirrored face
        # are not exactly mirrored): the sign is asserted where the angle is well past that.
        if abs(pose["yaw"]) >= 15:
            turned += 1
            assert pose["yaw"] * other["yaw"] < 0 and abs(pose["yaw"] + other["yaw"]) < 8, (pose, other)
        if abs(pose["roll"]) >= 15:
            tilted += 1
            assert pose["roll"] * other["roll"] < 0 and abs(pose["roll"] + other["roll"]) < 8, (pose, other)
        assert abs(pose["pitch"] - other["pitch"]) < 8, (pose, other)
    assert (turned, tilted) == (3, 3)  # t1.jpg's three turned and three tilted heads


def test_compreface_recognize_returns_pose_and_the_embedding(
    enrolled: DeepstackFace, port: int, people: dict[str, bytes]
) -> None:
    photo = another_photo(people["alice"])
    plugins = "pose,calculator"
    recognized = cf_post(port, "recognition/recognize", photo, face_plugins=plugins)
    (face,) = recognized.json()["result"]
    (detected,) = cf_post(port, "detection/detect", photo, face_plugins=plugins).json()["result"]
    assert face["subjects"][0]["subject"] == "alice"
    TypeAdapter(CompreFaceResult).validate_python(recognized.json())  # every field documented
    assert face["pose"] == detected["pose"]
    assert len(face["embedding"]) == 512
    assert float(np.dot(face["embedding"], detected["embedding"])) > 0.999  # the same face, the same vector


def test_compreface_no_face_is_code_28(port: int) -> None:
    blank = encode(np.full((200, 200, 3), 128, np.uint8))
    answer = cast(
        dict[str, Any], CompreFace("http://127.0.0.1", str(port)).init_face_detection("any").detect(blank)
    )
    assert answer == {"message": "No face is found in the given image", "code": 28}
    garbage = requests.post(
        f"http://127.0.0.1:{port}/api/v1/detection/detect", files={"file": b"GIF8 but not"}, timeout=TIMEOUT
    )
    assert (garbage.status_code, garbage.json()["code"]) == (400, 21), garbage.text


def test_compreface_error_codes_are_compreface_s(dropin: str, keyed_port: int) -> None:
    """CompreFace's code and status where facerest has the same condition (ERROR_TABLE)."""
    own = {"x-api-key": COLLECTION}
    base = f"{dropin}/api/v1"

    def answer(reply: requests.Response) -> tuple[int, int]:
        return reply.status_code, reply.json()["code"]

    photo = {"file": YAO}
    assert answer(requests.delete(f"{base}/recognition/faces/{'0' * 32}", headers=own, timeout=10)) == (
        404,
        11,
    )
    assert answer(requests.delete(f"{base}/recognition/subjects/nobody", headers=own, timeout=10)) == (
        404,
        42,
    )
    assert answer(requests.post(f"{base}/recognition/faces", files=photo, headers=own, timeout=10)) == (
        400,
        33,
    )
    assert answer(requests.post(f"{base}/recognition/faces?subject=x", headers=own, timeout=10)) == (400, 34)
    assert answer(requests.post(f"{base}/detection/detect?limit=-1", files=photo, timeout=10)) == (400, 36)
    threshold = requests.post(f"{base}/detection/detect?det_prob_threshold=2", files=photo, timeout=10)
    assert answer(threshold) == (400, 26)
    assert answer(requests.post(f"{base}/recognition/subjects", json={}, headers=own, timeout=10)) == (400, 5)
    keyed = f"http://127.0.0.1:{keyed_port}/api/v1/recognition/subjects"
    assert answer(requests.get(keyed, timeout=10)) == (400, 20)  # keys on, no x-api-key
    assert answer(requests.get(keyed, headers={"x-api-key": "wrong"}, timeout=10)) == (404, 10)


def test_the_drop_in_serves_its_own_openapi_document(dropin: str) -> None:
    served = requests.get(f"{dropin}/openapi.json", timeout=10).json()
    built = openapi_document()
    assert served["paths"] == built["paths"] and served["components"] == built["components"]
    compat_rules = {
        re.sub(r"<([^>]+)>", r"{\1}", rule.rule)
        for rule in create_rules()
        if rule.endpoint.split(".")[0] in {"deepstack", "compreface"}
    }
    assert compat_rules <= set(served["paths"])  # every drop-in route is documented
    no_face = served["paths"]["/api/v1/detection/detect"]["post"]["responses"]["400"]
    assert no_face["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CompreFaceError"
    }


# With API keys on: each protocol's key field, and the key's first collection.


@pytest.fixture(scope="module")
def keyed_port(system: Stack) -> Iterator[int]:
    keys = {"FACEREST_API_KEYS": "home-key keyed-home other-collection,everything-key *"}
    server = system.start_compat(extra_env=keys, processes=1)
    yield int(server.url.rsplit(":", 1)[1])
    server.stop()


def test_with_keys_on_a_key_works_in_its_first_collection_through_both_protocols(
    keyed_port: int, api: str, people: dict[str, bytes]
) -> None:
    deepstack = DeepstackFace(ip="127.0.0.1", port=keyed_port, api_key="home-key", timeout=TIMEOUT)
    assert deepstack.register("erin", people["alice"]) == "face added"
    assert requests.get(f"{api}/collections/keyed-home/subjects/erin", timeout=10).status_code == 200
    compreface = CompreFace("http://127.0.0.1", str(keyed_port)).init_face_recognition("home-key")
    assert compreface.get_subjects().list() == {"subjects": ["erin"]}
    wrong = DeepstackFace(ip="127.0.0.1", port=keyed_port, api_key="wrong", timeout=TIMEOUT)
    with pytest.raises(DeepstackException, match="status code: 401"):
        wrong.register("erin", people["alice"])
    refused = CompreFace("http://127.0.0.1", str(keyed_port)).init_face_recognition("wrong")
    assert refused.get_subjects().list() == {"message": "the API key is not valid", "code": 10}
