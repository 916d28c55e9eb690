"""Recognition across restarts and machines: an enroll that answered 201 survives kill -9 of every
process (SQLite); with PostgreSQL + pgvector, a face enrolled through one API replica is found at
once by a recognize through another and through HAProxy, and deleting it removes it everywhere:
from every search at once, and from the database's files after a compaction."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from deploy.haproxy import ProxyOptions, render_cluster
from deploy.launcher import Stack, stack, wait_until
from shared.settings import Settings
from testkit.photos import GROUP_PHOTOS
from testkit.postgres import files_holding, fresh_database, postgres_data_dir
from testkit.systems import redis_files_holding
from tests.client import b64
from tests.integration.test_recognition import T1, YAO, enroll, mirrored, recognize

# A worker without attribute models loads faster; recognition needs none.
WORKER_ENV = {"FACEREST_ATTRIBUTES": ""}


def test_an_enroll_that_answered_201_survives_kill_9_of_every_process(tmp_path: Path) -> None:
    with stack(tmp_path) as running:
        worker = running.start_worker(extra_env=WORKER_ENV)
        api = running.start_api()
        reply = enroll(running.api_url, "durable", "yao", [YAO.read_bytes()])
        assert reply.status_code == 201, reply.text
        face_id = reply.json()["faces"][0]["id"]

        for service in (api, worker, running.service("redis")):
            # SIGKILL to the whole process group (gunicorn's workers too): no shutdown code runs.
            os.killpg(service.pid, signal.SIGKILL)
            service.wait(10)
        running.restart_redis()
        worker.restart()
        api.restart()
        running.wait_ready([worker, api], 60)

        subject = requests.get(f"{running.api_url}/collections/durable/subjects/yao", timeout=10).json()
        assert [f["id"] for f in subject["faces"]] == [face_id]
        body = recognize(running.api_url, "durable", [mirrored(YAO, 0.9)])
        assert body["data"][0]["faces"][0]["subject"] == "yao"


@pytest.fixture(scope="module")
def postgres_url(postgres_server: str) -> str:
    return fresh_database(postgres_server, "recognition_stores_tests")


@pytest.fixture(scope="module")
def shared_cluster(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[tuple[Stack, list[str], str]]:
    """Two API replicas and two workers on one PostgreSQL gallery, HAProxy in front."""
    workdir = Path(tmp_path_factory.mktemp("pg-cluster"))
    with stack(workdir, gallery_url=postgres_url) as running:
        apis = [running.start_api(wait=False) for _ in range(2)]
        workers = [running.start_worker(extra_env=WORKER_ENV, wait=False) for _ in range(2)]
        proxy_port, stats_port = running.port(), running.port()
        options = ProxyOptions.from_settings(
            Settings(), bind=f"127.0.0.1:{proxy_port}", stats_bind=f"127.0.0.1:{stats_port}"
        )
        config = workdir / "haproxy.cfg"
        config.write_text(render_cluster(options, [api.port or 0 for api in apis]))
        haproxy = running.start_haproxy(config, proxy_port)
        running.wait_ready([*apis, *workers, haproxy], 120)
        proxy = f"http://127.0.0.1:{proxy_port}"
        # HAProxy marks a replica up only after two passing checks (rise 2), seconds after it
        # listens; until then the proxy answers 503 "no server available".
        wait_until(lambda: _answers(f"{proxy}/ready"), 30, "HAProxy to mark a replica up")
        yield running, [api.url for api in apis], proxy


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_face_enrolled_on_one_replica_is_recognized_on_the_other_at_once(
    shared_cluster: tuple[Stack, list[str], str],
) -> None:
    _, (first, second), proxy = shared_cluster
    assert enroll(first, "shared", "yao", [YAO.read_bytes()]).status_code == 201
    for api in (second, proxy):
        [face] = recognize(api, "shared", [mirrored(YAO, 0.8)])["data"][0]["faces"]
        assert face["subject"] == "yao"
    # A stranger stays nobody on the PostgreSQL gallery too.
    faces = recognize(second, "shared", [GROUP_PHOTOS["gdp.jpg"].read_bytes()])["data"][0]["faces"]
    assert faces and all(face["subject"] is None for face in faces)

    listed = requests.get(f"{second}/collections/shared/subjects", timeout=10).json()["subjects"]
    assert [s["subject"] for s in listed] == ["yao"]
    assert requests.delete(f"{second}/collections/shared/subjects/yao", timeout=10).status_code == 200
    [face] = recognize(first, "shared", [mirrored(YAO, 0.8)])["data"][0]["faces"]
    assert face["subject"] is None and face["matches"] == []


def test_the_same_photo_rule_and_verify_on_postgresql(shared_cluster: tuple[Stack, list[str], str]) -> None:
    _, (first, second), proxy = shared_cluster
    assert enroll(first, "pg-one", "yao", [YAO.read_bytes()]).status_code == 201
    faces = recognize(proxy, "pg-one", [T1.read_bytes(), YAO.read_bytes()], threshold=-1.0)["data"]
    assert [f["subject"] for f in faces[0]["faces"]].count("yao") == 1  # one of t1's six, never more
    assert faces[1]["faces"][0]["subject"] == "yao"
    verdict = requests.post(
        f"{second}/verify",
        json={"images": {"data": [b64(mirrored(YAO, 1.1))]}, "collection": "pg-one", "subject": "yao"},
        timeout=60,
    ).json()
    assert verdict["same"] is True


def test_a_compaction_erases_a_deleted_subject_from_the_database_and_redis_files(
    shared_cluster: tuple[Stack, list[str], str], postgres_url: str
) -> None:
    running, (first, second), proxy = shared_cluster
    data = postgres_data_dir(postgres_url)
    name = "erase-me-4b7d19"
    # A photo no other test here enrolls: other collections keep crops of YAO itself.
    photo = mirrored(YAO, 0.7)
    enrolled = enroll(first, "erasure", name, [photo])
    assert enrolled.status_code == 201, enrolled.text
    # The photo crossed Redis in the job's input, the name in its input and result: both are in
    # Redis's append-only file.
    in_redis = (photo[-300:-236], name.encode())
    assert redis_files_holding(running.client(), *in_redis)
    [face] = requests.get(f"{second}/collections/erasure/subjects/{name}", timeout=10).json()["faces"]
    crop = requests.get(f"{proxy}{face['thumbnail_url']}", timeout=10).content
    # From the end: the JPEG's first few hundred bytes are headers and tables every crop shares.
    needles = (crop[-300:-236], name.encode())
    assert files_holding(data, *needles)  # the scan finds them while enrolled

    assert requests.delete(f"{proxy}/collections/erasure/subjects/{name}", timeout=10).status_code == 200
    accepted = requests.post(f"{second}/collections/erasure/compact", json={}, timeout=10)
    assert accepted.status_code == 202, accepted.text
    polled = requests.get(f"{first}{accepted.json()['status_url']}?wait=30", timeout=40)
    state = polled.json()
    assert polled.status_code == 200 and state["status"] == "done", state
    assert (state["result"]["faces"], state["result"]["log_flushed"]) == (0, True)
    assert state["result"]["redis_rewritten"] is True
    assert files_holding(data, *needles) == []
    assert redis_files_holding(running.client(), *in_redis) == []


def test_an_api_key_limited_to_collections_cannot_touch_others(system: Stack) -> None:
    # An API with keys on the session's Redis, worker and gallery.
    keyed = system.start_api(extra_env={"FACEREST_API_KEYS": "all-key-4f1a,shop-key-9c2e shop1 shop2"})
    try:
        api = keyed.url
        shop = {"X-API-Key": "shop-key-9c2e"}
        body = {"images": {"data": [b64(YAO.read_bytes())]}}
        refused = requests.post(
            f"{api}/collections/staff/subjects/yao/faces", json=body, headers=shop, timeout=10
        )
        assert (refused.status_code, refused.json()["code"]) == (403, "collection_forbidden")
        assert "staff" in refused.json()["message"]
        deleted = requests.delete(f"{api}/collections/staff", headers=shop, timeout=10)
        assert deleted.status_code == 403
        # Its own collections pass the key check (this one does not exist yet).
        own = requests.post(f"{api}/collections/shop1/recognize", json=body, headers=shop, timeout=10)
        assert (own.status_code, own.json()["code"]) == (404, "collection_not_found")
        listed = requests.get(f"{api}/collections", headers=shop, timeout=10)
        assert listed.status_code == 200 and listed.json() == {"collections": []}
    finally:
        keyed.stop()
