"""Recognition end to end with the real models: enroll, recognize (1:N, open set), verify, delete,
through the API, the queue and a worker, on the default SQLite gallery.

People: the six of the group photo t1.jpg (each enrolled from a crop of the photo around their
face, with a margin) and Yao Ming (yaoming.jpg). Another photo of the same person: the photo
mirrored and rescaled (the recognizer sees a different image; the detector finds the face again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import pytest
import requests
from facerest_client.cli import main as cli_main

from deploy.launcher import Stack, stack
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from tests.client import b64, extract

T1 = GROUP_PHOTOS["t1.jpg"]
YAO = GROUP_PHOTOS["yaoming.jpg"]
TIMEOUT = 120


def mirrored(path: Path, scale: float) -> bytes:
    """Another photo of the same people: mirrored left-right and rescaled."""
    image = read_rgb(path)[:, ::-1]
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return encode(np.ascontiguousarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)))


def post(api: str, path: str, images: list[bytes], **fields: Any) -> requests.Response:
    body = {"images": {"data": [b64(data) for data in images]}, **fields}
    return requests.post(f"{api}{path}", json=body, timeout=TIMEOUT)


def enroll(api: str, collection: str, subject: str, images: list[bytes], **fields: Any) -> requests.Response:
    return post(api, f"/collections/{collection}/subjects/{subject}/faces", images, **fields)


def recognize(api: str, collection: str, images: list[bytes], **fields: Any) -> dict[str, Any]:
    reply = post(api, f"/collections/{collection}/recognize", images, **fields)
    assert reply.status_code == 200, reply.text
    return cast(dict[str, Any], reply.json())


@pytest.fixture(scope="module")
def t1_faces(api: str) -> list[tuple[float, float, float, float]]:
    """The six faces of t1.jpg, left to right, as /extract finds them."""
    reply = extract(api, [T1.read_bytes()], api_ver="2", extract_embedding=False)
    boxes = [tuple(face["bbox"]) for face in reply.json()["data"][0]["faces"]]
    assert len(boxes) == 6
    return sorted(cast(list[tuple[float, float, float, float]], boxes))


def crop_around(path: Path, box: tuple[float, float, float, float]) -> bytes:
    """A photo of one person: the face with a margin of its own size on every side."""
    image = read_rgb(path)
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    left, top = max(0, round(x1 - w)), max(0, round(y1 - h))
    right, bottom = min(image.shape[1], round(x2 + w)), min(image.shape[0], round(y2 + h))
    return encode(np.ascontiguousarray(image[top:bottom, left:right]))


@pytest.fixture(scope="module")
def people(api: str, t1_faces: list[tuple[float, float, float, float]]) -> str:
    """A collection with the six people of t1.jpg, person0 leftmost."""
    for i, box in enumerate(t1_faces):
        reply = enroll(api, "t1-people", f"person{i}", [crop_around(T1, box)])
        assert reply.status_code == 201, reply.text
    return "t1-people"


def test_each_person_is_recognized_in_another_photo(api: str, people: str) -> None:
    body = recognize(api, people, [mirrored(T1, 0.8)])
    faces = body["data"][0]["faces"]
    assert len(faces) == 6
    # Mirrored: the leftmost face is the rightmost person.
    by_x = sorted(faces, key=lambda f: f["bbox"][0])
    assert [f["subject"] for f in by_x] == [f"person{i}" for i in reversed(range(6))]
    for face in faces:
        assert face["similarity"] >= body["threshold"]
        assert face["matches"][0]["subject"] == face["subject"]
        assert len(face["matches"]) == 3  # the default limit
        assert face["similarity"] > face["matches"][1]["similarity"] + 0.2


def test_recognize_tells_what_extract_does_of_each_face_as_asked(api: str, people: str) -> None:
    # One call names the faces and gives what a page draws: the same numbers as /extract's.
    photo = T1.read_bytes()
    options = {"return_landmarks": True, "extract_ga": True, "return_quality": True}
    recognized = recognize(api, people, [photo], **options)["data"][0]["faces"]
    extracted = extract(api, [photo], api_ver="2", **options).json()["data"][0]["faces"]
    assert len(recognized) == len(extracted) == 6
    by_box = {tuple(round(v) for v in face["bbox_float"]): face for face in extracted}
    for face in recognized:
        same = by_box[tuple(round(v) for v in face["bbox"])]
        assert face["subject"] is not None
        assert np.allclose(face["landmarks"], same["landmarks_float"], atol=0.01)
        assert (face["gender"], face["age"]) == (same["gender"], same["age"])
        assert face["norm"] == pytest.approx(same["norm"], rel=1e-4)
        assert face["quality"] == same["quality"] and 0 < face["quality"]["quality"] < 1
        assert "landmarks106" not in face
    plain = recognize(api, people, [photo])["data"][0]["faces"]
    assert all(
        face["norm"] > 0 and "landmarks" not in face and "age" not in face and "quality" not in face
        for face in plain
    )


def test_a_stranger_is_nobody(api: str, people: str) -> None:
    body = recognize(api, people, [mirrored(YAO, 1.2)])
    [face] = body["data"][0]["faces"]
    assert face["subject"] is None
    assert face["similarity"] < body["threshold"]
    assert face["matches"][0]["similarity"] == face["similarity"]


def test_two_faces_of_one_photo_never_get_the_same_subject(
    api: str, t1_faces: list[tuple[float, float, float, float]]
) -> None:
    """Only person2 enrolled, and a threshold every face passes: independent argmax would name all
    six person2; the assignment names only the face that is person2."""
    assert enroll(api, "one-of-six", "person2", [crop_around(T1, t1_faces[2])]).status_code == 201
    body = recognize(api, "one-of-six", [T1.read_bytes()], threshold=-1.0)
    faces = sorted(body["data"][0]["faces"], key=lambda f: f["bbox"][0])
    assert [f["subject"] for f in faces] == [None, None, "person2", None, None, None]
    assert all(f["matches"][0]["subject"] == "person2" for f in faces)


def test_enrolling_the_same_photo_again_returns_the_same_face(api: str) -> None:
    first = enroll(api, "idem", "yao", [YAO.read_bytes()])
    again = enroll(api, "idem", "yao", [YAO.read_bytes()])
    assert first.status_code == again.status_code == 201
    assert first.json()["faces"][0]["id"] == again.json()["faces"][0]["id"]
    assert first.json()["faces"][0]["new"] and not again.json()["faces"][0]["new"]
    subject = requests.get(f"{api}/collections/idem/subjects/yao", timeout=10).json()
    assert len(subject["faces"]) == 1


def test_verify_two_photos_and_a_photo_against_a_subject(api: str, people: str) -> None:
    same = post(api, "/verify", [YAO.read_bytes(), mirrored(YAO, 0.7)]).json()
    assert same["same"] is True and same["similarity"] >= same["threshold"]
    different = post(api, "/verify", [YAO.read_bytes(), T1.read_bytes()]).json()
    assert different["same"] is False and different["similarity"] < different["threshold"]
    # t1's largest face against each enrolled person: it is exactly one of them.
    verdicts = [
        post(api, "/verify", [mirrored(T1, 1.0)], collection=people, subject=f"person{i}").json()["same"]
        for i in range(6)
    ]
    assert sum(verdicts) == 1


def test_delete_removes_the_subject_from_searches_and_its_crops(
    api: str, system: Stack, t1_faces: list[tuple[float, float, float, float]]
) -> None:
    collection = "to-delete"
    for i in (0, 1):
        assert enroll(api, collection, f"person{i}", [crop_around(T1, t1_faces[i])]).status_code == 201
    subject = requests.get(f"{api}/collections/{collection}/subjects/person0", timeout=10).json()
    thumbnail = requests.get(f"{api}{subject['faces'][0]['thumbnail_url']}", timeout=10)
    assert thumbnail.status_code == 200 and thumbnail.headers["Content-Type"] == "image/jpeg"
    crop = cv2.imdecode(np.frombuffer(thumbnail.content, np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None and crop.shape == (112, 112, 3)

    deleted = requests.delete(f"{api}/collections/{collection}/subjects/person0", timeout=10)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 1}
    body = recognize(api, collection, [T1.read_bytes()], threshold=-1.0, limit=5)
    for face in body["data"][0]["faces"]:
        assert all(m["subject"] == "person1" for m in face["matches"])
    assert requests.get(f"{api}{subject['faces'][0]['thumbnail_url']}", timeout=10).status_code == 404
    assert requests.get(f"{api}/collections/{collection}/subjects/person0", timeout=10).status_code == 404
    gallery_files = [p for p in system.logs.iterdir() if p.name.startswith("gallery")] if system.logs else []
    assert gallery_files and not any(thumbnail.content in p.read_bytes() for p in gallery_files)

    assert requests.delete(f"{api}/collections/{collection}", timeout=10).status_code == 200
    listed = requests.get(f"{api}/collections", timeout=10).json()["collections"]
    assert collection not in [c["collection"] for c in listed]


def test_a_renamed_subject_is_recognized_under_its_new_name(
    api: str, t1_faces: list[tuple[float, float, float, float]]
) -> None:
    collection = "to-rename"
    for i, name in enumerate(("ann", "ben")):
        assert enroll(api, collection, name, [crop_around(T1, t1_faces[i])]).status_code == 201
    subjects = f"{api}/collections/{collection}/subjects"
    renamed = requests.patch(f"{subjects}/ann", json={"subject": "anna"}, timeout=10)
    assert renamed.status_code == 200 and renamed.json() == {"subject": "anna", "faces": 1}
    named = {face["subject"] for face in recognize(api, collection, [T1.read_bytes()])["data"][0]["faces"]}
    assert {"anna", "ben"} <= named and "ann" not in named
    taken = requests.patch(f"{subjects}/anna", json={"subject": "ben"}, timeout=10)
    assert taken.status_code == 409 and taken.json()["code"] == "subject_exists"
    assert requests.patch(f"{subjects}/ann", json={"subject": "x"}, timeout=10).status_code == 404
    bad = requests.patch(f"{subjects}/anna", json={"subject": "../etc"}, timeout=10)
    assert bad.status_code == 422
    assert requests.delete(f"{api}/collections/{collection}", timeout=10).status_code == 200


def test_listing_collections_and_subjects(api: str, people: str) -> None:
    listed = {
        c["collection"]: c for c in requests.get(f"{api}/collections", timeout=10).json()["collections"]
    }
    assert listed[people]["subjects"] == 6 and listed[people]["faces"] == 6
    assert listed[people]["recognizer"]["key"] == "arcface"
    assert listed[people]["recognizer"]["dimension"] == 512
    page = requests.get(f"{api}/collections/{people}/subjects?limit=4", timeout=10).json()
    assert [s["subject"] for s in page["subjects"]] == [f"person{i}" for i in range(4)]
    rest = requests.get(f"{api}{page['next']}", timeout=10).json()
    assert [s["subject"] for s in rest["subjects"]] == ["person4", "person5"] and rest["next"] is None


def test_async_recognize_answers_through_results(api: str, people: str) -> None:
    reply = post(api, f"/collections/{people}/recognize", [mirrored(T1, 0.8)], **{"async": True})
    assert reply.status_code == 202
    state = requests.get(f"{api}{reply.json()['status_url']}?wait=30", timeout=TIMEOUT).json()
    assert state["status"] == "done"
    assert len(state["result"]["data"][0]["faces"]) == 6


@pytest.mark.parametrize(
    ("path", "fields", "status", "code"),
    [
        ("/collections/bad name!/subjects/x/faces", {}, 422, "validation_error"),
        ("/collections/ok/subjects/" + "x" * 129 + "/faces", {}, 422, "validation_error"),
        ("/collections/ok/subjects/.hidden/faces", {}, 422, "validation_error"),
        ("/collections/never-made/recognize", {}, 404, "collection_not_found"),
    ],
)
def test_bad_names_and_unknown_collections_get_clear_4xx(
    api: str, path: str, fields: dict[str, Any], status: int, code: str
) -> None:
    reply = post(api, path, [YAO.read_bytes()], **fields)
    assert (reply.status_code, reply.json()["code"]) == (status, code), reply.text


def test_images_that_cannot_be_enrolled_are_named(api: str) -> None:
    blank = encode(np.full((200, 200, 3), 128, np.uint8))
    reply = enroll(api, "errors", "someone", [YAO.read_bytes(), blank])
    assert reply.status_code == 422 and reply.json()["code"] == "no_face"
    assert reply.json()["message"].startswith("images.data[1]")
    reply = enroll(api, "errors", "someone", [T1.read_bytes()], face="only")
    assert reply.status_code == 422 and reply.json()["code"] == "several_faces"
    bad = requests.post(
        f"{api}/collections/errors/subjects/someone/faces", json={"images": {"data": ["!!!"]}}, timeout=10
    )
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_image"
    # Yao Ming's face scores 0.7; blurred, under 0.1.
    blurred = encode(np.asarray(cv2.GaussianBlur(read_rgb(YAO), (0, 0), 3), np.uint8))
    reply = enroll(api, "errors", "someone", [YAO.read_bytes(), blurred], min_quality=0.5)
    assert reply.status_code == 422 and reply.json()["code"] == "low_quality", reply.text
    assert reply.json()["message"].startswith("images.data[1]: face quality 0.0")
    # Nothing of the failed requests was enrolled.
    assert requests.get(f"{api}/collections/errors/subjects/someone", timeout=10).status_code == 404


def test_the_cli_enrolls_a_folder_resumably_and_recognizes(
    api: str,
    t1_faces: list[tuple[float, float, float, float]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for i in (0, 5):
        (tmp_path / f"person{i}").mkdir()
        (tmp_path / f"person{i}" / "crop.jpg").write_bytes(crop_around(T1, t1_faces[i]))
    # A second photo under person5 (its largest face may be someone else: no subject is named twice).
    (tmp_path / "person5" / "mirror.jpg").write_bytes(mirrored(T1, 0.5))
    assert cli_main(["--url", api, "enroll", str(tmp_path), "--collection", "cli"]) == 0
    assert "enrolled 3, skipped 0" in capsys.readouterr().out
    assert cli_main(["--url", api, "enroll", str(tmp_path), "--collection", "cli"]) == 0
    assert "enrolled 0, skipped 3" in capsys.readouterr().out

    photo = tmp_path / "t1.jpg"
    photo.write_bytes(T1.read_bytes())
    assert cli_main(["--url", api, "recognize", str(photo), "--collection", "cli"]) == 0
    named = [f["subject"] for f in json.loads(capsys.readouterr().out)["images"][0]["faces"]]
    assert sorted(s for s in named if s) == ["person0", "person5"]
    assert cli_main(["--url", api, "verify", str(photo), str(photo)]) == 0
    assert json.loads(capsys.readouterr().out)["same"] is True
    # Two people: exit status 1 (an answer; errors exit 2).
    crops = [str(tmp_path / f"person{i}" / "crop.jpg") for i in (0, 5)]
    assert cli_main(["--url", api, "verify", *crops]) == 1
    assert json.loads(capsys.readouterr().out)["same"] is False


def test_reindex_re_embeds_the_stored_crops(api: str) -> None:
    assert enroll(api, "reindexed", "yao", [YAO.read_bytes()]).status_code == 201
    before = recognize(api, "reindexed", [mirrored(YAO, 0.9)])["data"][0]["faces"][0]
    accepted = requests.post(f"{api}/collections/reindexed/reindex", json={}, timeout=10)
    assert accepted.status_code == 202
    state = requests.get(f"{api}{accepted.json()['status_url']}?wait=30", timeout=TIMEOUT).json()
    assert state["status"] == "done", state
    assert (state["result"]["faces"], state["result"]["dropped"]) == (1, 0)
    after = recognize(api, "reindexed", [mirrored(YAO, 0.9)])["data"][0]["faces"][0]
    # Same model: the crop's vector comes back close to the photo's (the crop is a re-encoded JPEG).
    assert after["subject"] == before["subject"] == "yao"
    assert abs(after["similarity"] - before["similarity"]) < 0.1


def test_an_int8_worker_finds_its_own_enrolments_and_never_compares_them_with_fp32(
    tmp_path: Path,
) -> None:
    """arcface_int8 through the queue: it names Yao Ming in another photo and a stranger nobody;
    an fp32 worker refuses its collection (409) until a reindex re-embeds it."""
    with stack(tmp_path) as system:
        int8 = system.start_worker(extra_env={"FACEREST_RECOGNIZER": "arcface_int8"})
        system.start_api()
        api = system.api_url
        enrolled = enroll(api, "int8", "yao", [YAO.read_bytes()])
        assert enrolled.status_code == 201, enrolled.text
        (face,) = recognize(api, "int8", [mirrored(YAO, 0.8)])["data"][0]["faces"]
        assert face["subject"] == "yao" and face["similarity"] > 0.6, face
        strangers = recognize(api, "int8", [T1.read_bytes()])["data"][0]["faces"]
        assert len(strangers) == 6 and all(f["subject"] is None for f in strangers)
        int8.stop()
        system.start_worker()  # fp32 arcface
        refused = post(api, "/collections/int8/recognize", [mirrored(YAO, 0.8)])
        assert refused.status_code == 409, refused.text
        message = refused.json()["message"]
        assert "vectors of arcface_int8 (" in message and "workers run arcface (" in message
        accepted = requests.post(f"{api}/collections/int8/reindex", json={}, timeout=10)
        state = requests.get(f"{api}{accepted.json()['status_url']}?wait=30", timeout=TIMEOUT).json()
        assert state["status"] == "done", state
        (face,) = recognize(api, "int8", [mirrored(YAO, 0.8)])["data"][0]["faces"]
        assert face["subject"] == "yao"
