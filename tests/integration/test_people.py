"""People discovery through the API, the queue and a worker with the real models: the six people of
t1.jpg in three photos (the photo, and mirrored copies at two scales) become six clusters, Yao
Ming's one photo stays alone, a named cluster names the faces of a later photo, and a photo sent
again is answered as stored; the command line ingests a folder tree once; a large ingest is split
into jobs that run at once and answer as one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import requests
from facerest_client.cli import main as cli_main

from deploy.launcher import Service, Stack
from shared.jobs import JobStatus, JobStore
from tests.client import b64
from tests.integration.test_recognition import T1, TIMEOUT, YAO, enroll, mirrored, recognize

COLLECTION = "library"


def ingest(
    api: str,
    images: list[bytes],
    headers: dict[str, str] | None = None,
    collection: str = COLLECTION,
    run_async: bool = False,
    **fields: Any,
) -> requests.Response:
    body = {"images": {"data": [b64(data) for data in images]}, **fields}
    if run_async:
        body["async"] = True
    url = f"{api}/collections/{collection}/photos"
    return requests.post(url, json=body, headers=headers, timeout=TIMEOUT)


def clusters(api: str) -> dict[str, Any]:
    reply = requests.get(f"{api}/collections/{COLLECTION}/clusters", timeout=10)
    assert reply.status_code == 200, reply.text
    return cast(dict[str, Any], reply.json())


def test_a_library_s_faces_become_people_and_a_name_sticks(api: str) -> None:
    # Yao Ming is enrolled in the collection's gallery: his face is attached to him at ingest.
    assert enroll(api, COLLECTION, "yao", [mirrored(YAO, 0.9)]).status_code == 201
    photos = [T1.read_bytes(), mirrored(T1, 0.8), YAO.read_bytes(), mirrored(T1, 0.6)]
    reply = ingest(api, photos, photo_ids=["t1", "t1-mirrored", "yao", "t1-small"])
    assert reply.status_code == 200, reply.text
    answered = reply.json()["photos"]
    assert [p["photo_id"] for p in answered] == ["t1", "t1-mirrored", "yao", "t1-small"]
    assert [len(p["faces"]) for p in answered] == [6, 6, 1, 6]
    assert all(p["new"] for p in answered)
    assert answered[2]["faces"][0]["subject"] == "yao" and answered[2]["faces"][0]["cluster"] is not None
    assert all(f["subject"] is None for p in answered if p["photo_id"] != "yao" for f in p["faces"])
    # Six people of three photos each: six clusters, one face of each photo in each; Yao's.
    listed = clusters(api)
    assert sorted(c["size"] for c in listed["clusters"]) == [1] + [3] * 6
    assert [c["subject"] for c in listed["clusters"] if c["size"] == 1] == ["yao"]
    listed["clusters"] = [c for c in listed["clusters"] if c["size"] == 3]
    assert listed["unclustered"] == 0 and listed["pending"] == 0
    for cluster in listed["clusters"]:
        assert sorted(f["photo_id"] for f in cluster["faces"]) == ["t1", "t1-mirrored", "t1-small"]
        assert cluster["cover"] == cluster["faces"][0] and cluster["subject"] is None
    thumb = requests.get(f"{api}{listed['clusters'][0]['cover']['thumbnail_url']}", timeout=10)
    assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"
    # Name one cluster; a later photo of the same people names that person's face.
    named = listed["clusters"][0]
    done = requests.post(
        f"{api}/collections/{COLLECTION}/clusters/{named['id']}/name", json={"subject": "ann"}, timeout=10
    )
    assert done.status_code == 200 and done.json()["cluster"] == named["id"], done.text
    # ann is the gallery's now: recognize finds her (her three faces are enrolled).
    seen = recognize(api, COLLECTION, [mirrored(T1, 0.7)])["data"][0]["faces"]
    assert sorted(f["subject"] or "" for f in seen) == ["", "", "", "", "", "ann"]
    ann_face = named["faces"][0]["face_id"]
    later = ingest(api, [mirrored(T1, 0.7)], photo_ids=["t1-later"]).json()["photos"][0]["faces"]
    assert sorted((f["subject"] or "") for f in later) == ["", "", "", "", "", "ann"]
    # The same bytes again, under another id: answered as stored, nothing added.
    again = ingest(api, [T1.read_bytes()], photo_ids=["t1-copy"]).json()["photos"][0]
    assert again["photo_id"] == "t1" and again["new"] is False
    assert sum(c["size"] for c in clusters(api)["clusters"]) == 25
    # Taking a face out of ann takes it out of the gallery's ann too.
    moved = requests.post(f"{api}/collections/{COLLECTION}/photos/faces/{ann_face}/move", json={}, timeout=10)
    assert moved.status_code == 200 and moved.json()["cluster"] is None, moved.text
    enrolled = requests.get(f"{api}/collections/{COLLECTION}/subjects/ann", timeout=10).json()
    assert len(enrolled["faces"]) == 2
    # A full re-cluster (a job) keeps the names and finds the same people.
    queued = requests.post(f"{api}/collections/{COLLECTION}/clusters/recluster", json={}, timeout=10)
    assert queued.status_code == 202, queued.text
    state = requests.get(f"{api}{queued.json()['status_url']}?wait=30", timeout=40).json()
    assert state["status"] == "done" and state["result"]["clusters"] == 7 and state["result"]["faces"] == 25
    # Its progress, in photos clustered again: all of them by now (the named clusters' are kept).
    assert state["progress"]["done"] == state["progress"]["total"] > 0
    after = clusters(api)["clusters"]
    assert sorted(c["size"] for c in after) == [1, 3] + [4] * 5
    assert [c["subject"] for c in after if c["id"] == named["id"]] == ["ann"]
    # Deleting the collection deletes what discovery stored.
    assert requests.delete(f"{api}/collections/{COLLECTION}", timeout=10).status_code == 200
    assert requests.get(f"{api}/collections/{COLLECTION}/clusters", timeout=10).status_code == 404


def test_bad_requests_are_refused_with_their_codes(api: str) -> None:
    reply = ingest(api, [YAO.read_bytes()], photo_ids=["a", "b"])
    assert reply.status_code == 422 and reply.json()["code"] == "validation_error"
    missing = requests.get(f"{api}/collections/nothing-here/clusters", timeout=10)
    assert missing.status_code == 404 and missing.json()["code"] == "collection_not_found"


def test_the_cli_ingests_a_tree_once_by_content(
    api: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "trip" / "day2").mkdir(parents=True)
    (tmp_path / "t1.jpg").write_bytes(T1.read_bytes())
    (tmp_path / "trip" / "t1-mirrored.jpg").write_bytes(mirrored(T1, 0.8))
    (tmp_path / "trip" / "day2" / "t1-small.jpg").write_bytes(mirrored(T1, 0.6))
    (tmp_path / "trip" / "day2" / "copy.jpg").write_bytes(T1.read_bytes())  # the same bytes again
    command = ["--url", api, "ingest", str(tmp_path), "--collection", "cli-library", "--batch", "2"]
    assert cli_main(command) == 0
    assert "ingested 3 photos (18 faces), skipped 1" in capsys.readouterr().out
    assert cli_main(command) == 0
    assert "ingested 0 photos (0 faces), skipped 4" in capsys.readouterr().out
    listed = requests.get(f"{api}/collections/cli-library/clusters", timeout=10).json()
    assert sorted(c["size"] for c in listed["clusters"]) == [3] * 6
    photo_ids = {f["photo_id"] for c in listed["clusters"] for f in c["faces"]}
    assert photo_ids == {"t1.jpg", "trip/t1-mirrored.jpg", "trip/day2/t1-small.jpg"}


@pytest.fixture(scope="module")
def split_api(system: Stack) -> Iterator[str]:
    """An API that splits an ingest into jobs of two photos."""
    api: Service = system.start_api(extra_env={"FACEREST_INGEST_JOB_PHOTOS": "2"})
    yield api.url
    api.stop()


def test_a_large_ingest_is_split_into_jobs_that_run_at_once_and_answer_as_one(
    split_api: str, system: Stack
) -> None:
    photos = [T1.read_bytes(), mirrored(T1, 0.8), YAO.read_bytes(), mirrored(T1, 0.6), mirrored(YAO, 0.7)]
    ids = ["s-t1", "s-mirrored", "s-yao", "s-small", "s-yao-mirrored"]
    key = {"Idempotency-Key": "split-ingest"}
    reply = ingest(split_api, photos, headers=key, photo_ids=ids, collection="split")
    assert reply.status_code == 200, reply.text
    answered = reply.json()["photos"]
    assert [p["photo_id"] for p in answered] == ids, "in request order"
    assert [len(p["faces"]) for p in answered] == [6, 6, 1, 6, 1] and all(p["new"] for p in answered)
    # The seven people: one cluster each, although three jobs stored them. (A face's cluster in
    # the answer is as its own job left it: Yao's first photo may have been stored alone.)
    listed = requests.get(f"{split_api}/collections/split/clusters", timeout=10).json()
    assert sorted(c["size"] for c in listed["clusters"]) == [2] + [3] * 6 and listed["unclustered"] == 0
    # A retry with the key answers from the same request, without storing anything again.
    again = ingest(split_api, photos, headers=key, photo_ids=ids, collection="split")
    assert again.status_code == 200 and again.json()["photos"] == answered
    # Async: one id, one state gathered from its two jobs (two photos each).
    queued = ingest(split_api, photos[:4], collection="split", run_async=True, photo_ids=ids[:4])
    assert queued.status_code == 202, queued.text
    job = queued.json()["id"]
    state = requests.get(f"{split_api}/results/{job}?wait=30", timeout=40).json()
    assert state["status"] == "done" and state["progress"] == {"done": 4, "total": 4}, state
    assert [p["photo_id"] for p in state["result"]["photos"]] == ids[:4]
    assert not any(p["new"] for p in state["result"]["photos"]), "stored by the first request"
    with system.client() as client:
        store = JobStore(client, "facerest", 60)
        parent = store.state(job)
        children = [store.state(child) for child in parent.children]
    assert [c.status for c in children] == [JobStatus.DONE] * 2 and len(parent.children) == 2
    first, second = children
    assert first.started is not None and second.started is not None
    assert first.finished is not None and second.finished is not None
    assert second.started < first.finished and first.started < second.finished, "they ran at once"
