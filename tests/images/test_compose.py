"""The images, run as users deploy them: compose.yaml with podman-compose (make test-images).

Redis with AOF on a volume, 2 API replicas behind HAProxy, 2 CPU workers, Flower with auth, the
settings file with an API key; every request goes through HAProxy's published port. Containers
are killed with ``podman kill`` under load, and the deployment is brought down and up again.
The tests run in this file's order on one deployment (module fixture); the images are built
beforehand by scripts/build-images.sh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
import requests

from deploy.launcher import ROOT, wait_until
from shared.contract import worker_id
from testkit.photos import GROUP_PHOTOS, encode, read_rgb
from tests.client import b64
from tests.faces import FACES_IN
from tests.images.deployment import (
    EXPECTED,
    FACEREST_SERVICES,
    SYNC_TIMEOUT_S,
    Deployment,
    podman,
)

# yaoming.jpg: one face, 21 kB.
YAO = GROUP_PHOTOS["yaoming.jpg"]
T1 = GROUP_PHOTOS["t1.jpg"]
STREAMS = 4
# Several images per job make each job last long enough for the kill to land mid-job.
IMAGES_PER_JOB = 8
# First start pulls nothing (images are local) but loads every model in two workers at once.
READY_TIMEOUT_S = 300
LOGS = ROOT / "var" / "images" / "logs"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    running = Deployment(Path(tmp_path_factory.mktemp("compose")))
    running.prepare()
    # Whatever an interrupted earlier run left: containers, volumes (its gallery, its queue).
    running.down(volumes=True)
    try:
        start = time.monotonic()
        running.up()
        ready_s = running.wait_ready(READY_TIMEOUT_S)
        print(f"\ncompose up: {time.monotonic() - start:.0f} s to ready ({ready_s:.0f} s after up returned)")
        yield running
    finally:
        print(f"\nstop times (s): {running.stop_each()}")
        running.save_logs(LOGS)
        running.down(volumes=True)


def healthy(name: str) -> bool:
    # podman runs health checks from systemd timers, absent here: run the container's own check.
    podman("healthcheck", "run", name, check=False)
    status = podman("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()
    return status == "healthy"


def test_every_container_turns_healthy_and_gets_the_settings_file(deployment: Deployment) -> None:
    containers = deployment.containers()
    assert {s: sum(c.service == s for c in containers) for s in EXPECTED} == EXPECTED
    # HAProxy's image has no health check: every request below goes through it.
    checked = [c for c in containers if c.service != "haproxy"]
    wait_until(lambda: all(healthy(c.name) for c in checked), 120, "every health check healthy")
    for container in containers:
        if container.service not in FACEREST_SERVICES:
            continue
        env = podman("exec", container.name, "printenv", "FACEREST_SYNC_TIMEOUT_S", "FACEREST_API_KEYS")
        assert env.stdout.split() == [str(SYNC_TIMEOUT_S), deployment.api_key], container.name
        # Non-root: the images' facerest user.
        assert podman("exec", container.name, "id", "-u").stdout.strip() == "10001", container.name
    # HAProxy was rendered from the same file: it waits SYNC_TIMEOUT_S + 15 s for a replica.
    assert "timeout server 75s" in (ROOT / "var" / "compose" / "haproxy.cfg").read_text()
    # Flower answers only with the password of the settings file.
    flower = f"http://127.0.0.1:{deployment.flower_port}/"
    assert requests.get(flower, timeout=10).status_code == 401
    user, password = deployment.flower_auth.split(":", 1)
    assert requests.get(flower, auth=(user, password), timeout=10).status_code == 200
    # The drop-in server answers a DeepStack client's detection on its own port, with the key.
    detect = requests.post(
        f"http://127.0.0.1:{deployment.compat_port}/v1/vision/face",
        files={"image": ("t1.jpg", T1.read_bytes())},
        data={"api_key": deployment.api_key},
        timeout=SYNC_TIMEOUT_S + 30,
    )
    assert detect.status_code == 200 and detect.json()["success"] is True, detect.text
    assert len(detect.json()["predictions"]) == FACES_IN["t1.jpg"]


def post(session: requests.Session, url: str, images: list[bytes], **fields: Any) -> requests.Response:
    body = {"images": {"data": [b64(data) for data in images]}, **fields}
    return session.post(url, json=body, timeout=SYNC_TIMEOUT_S + 30)


def mirrored(path: Path) -> bytes:
    return encode(np.ascontiguousarray(read_rgb(path)[:, ::-1]))


def test_extract_enroll_recognize_and_async_results_through_haproxy(deployment: Deployment) -> None:
    session, url = deployment.session(), deployment.url
    assert (
        requests.post(
            f"{url}/extract", json={"images": {"data": [b64(YAO.read_bytes())]}}, timeout=30
        ).status_code
        == 401
    )

    reply = post(session, f"{url}/extract", [YAO.read_bytes()])
    assert reply.status_code == 200, reply.text
    [faces] = reply.json()
    assert len(faces) == FACES_IN["yaoming.jpg"] and len(faces[0]["vec"]) == 512

    reply = post(session, f"{url}/collections/compose/subjects/yao/faces", [YAO.read_bytes()])
    assert reply.status_code == 201, reply.text
    body = post(session, f"{url}/collections/compose/recognize", [mirrored(YAO)]).json()
    [face] = body["data"][0]["faces"]
    assert face["subject"] == "yao" and face["similarity"] > body["threshold"], body

    reply = post(session, f"{url}/extract", [T1.read_bytes()], **{"async": True})
    assert reply.status_code == 202, reply.text
    state = session.get(f"{url}/results/{reply.json()['id']}?wait=30", timeout=60).json()
    assert state["status"] == "done", state
    assert len(state["result"][0]) == FACES_IN["t1.jpg"]


@dataclass(frozen=True, slots=True)
class Outcome:
    run_async: bool
    status: int | None
    job_id: str | None
    error: str | None
    sent_at: float
    at: float

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == (202 if self.run_async else 200)


def stream(deployment: Deployment, stop: threading.Event, out: list[Outcome], first_async: bool) -> None:
    """POST /extract through HAProxy until stopped, alternating synchronous and async requests."""
    session, image, run_async = deployment.session(), b64(YAO.read_bytes()), first_async
    while not stop.is_set():
        body = {"images": {"data": [image] * IMAGES_PER_JOB}, "async": run_async}
        sent_at = time.monotonic()
        try:
            reply = session.post(f"{deployment.url}/extract", json=body, timeout=SYNC_TIMEOUT_S + 30)
        except requests.RequestException as exc:
            out.append(Outcome(run_async, None, None, repr(exc), sent_at, time.monotonic()))
        else:
            job = reply.json().get("id") if run_async and reply.status_code == 202 else None
            error = None if reply.ok else reply.text[:300]
            out.append(Outcome(run_async, reply.status_code, job, error, sent_at, time.monotonic()))
        run_async = not run_async


def under_load(
    deployment: Deployment, action: Any, settled: Any, timeout_s: float
) -> tuple[list[Outcome], float]:
    """Stream requests, run ``action`` once answers flow, keep streaming until ``settled(outcomes,
    done_at)`` holds; returns every outcome and when the action was done."""
    outcomes: list[Outcome] = []
    stop = threading.Event()
    with ThreadPoolExecutor(STREAMS) as pool:
        futures = [pool.submit(stream, deployment, stop, outcomes, i % 2 == 0) for i in range(STREAMS)]
        try:
            wait_until(lambda: sum(o.ok for o in outcomes) >= 8, 120, "first answers under load")
            done_at = action()
            wait_until(lambda: settled(outcomes, done_at), timeout_s, "recovery under load")
        finally:
            stop.set()
        for future in futures:
            future.result()
    return outcomes, done_at


def all_done(deployment: Deployment, jobs: list[str]) -> bool:
    session = deployment.session()
    return all(
        session.get(f"{deployment.url}/results/{job}", timeout=10).json()["status"] == "done" for job in jobs
    )


def running_jobs(deployment: Deployment) -> dict[str, str]:
    """The jobs workers hold now, with the worker holding each (Redis' facerest:running hash)."""
    (redis,) = deployment.of("redis")
    words = podman("exec", redis.name, "redis-cli", "--raw", "HGETALL", "facerest:running").stdout.split()
    return dict(zip(words[::2], words[1::2], strict=True))


def test_killing_a_worker_under_load_loses_no_accepted_job(deployment: Deployment) -> None:
    victim = deployment.of("worker-cpu")[0]
    host = podman("inspect", "--format", "{{.Config.Hostname}}", victim.name).stdout.strip()
    lost: dict[str, str] = {}  # job -> the victim's worker name

    def held() -> dict[str, str]:
        return {job: w for job, w in running_jobs(deployment).items() if w.endswith(f"@{host}")}

    def kill() -> float:
        # While it holds a job, so that one has to come back through the other worker's reaper.
        wait_until(lambda: bool(held()), 60, "a job on the victim worker")
        podman("kill", victim.name)
        killed_at = time.monotonic()
        lost.update(held())  # read after the kill: those it still held are lost with it
        return killed_at

    def settled(outcomes: list[Outcome], killed_at: float) -> bool:
        return sum(o.ok and o.sent_at > killed_at for o in outcomes) >= 8 and all_done(deployment, list(lost))

    outcomes, _ = under_load(deployment, kill, settled, 90)
    # podman's restart policy leaves a container that `podman kill` stopped alone (Docker's
    # restarts it): start it again, as an operator would, for the tests that follow.
    podman("start", victim.name)
    # Every synchronous caller got its 200 (a job lost with the worker ran again on the other),
    # and every request got its answer.
    failures = [o for o in outcomes if not o.ok]
    assert failures == [], failures[:5]
    accepted = [o.job_id for o in outcomes if o.job_id is not None]
    assert accepted and len(accepted) == sum(o.run_async for o in outcomes)
    wait_until(lambda: all_done(deployment, accepted), 90, "every accepted job done")
    assert lost, "the victim finished its jobs before the kill landed: nothing was lost to recover"
    session = deployment.session()
    for job, worker in lost.items():
        state = session.get(f"{deployment.url}/results/{job}", timeout=10).json()
        assert state["status"] == "done" and state["attempts"] == 2, state
        assert state["worker"] != worker_id(worker), state
    print(
        f"\nworker kill: {len(outcomes)} requests ({len(accepted)} async) answered, "
        f"{len(lost)} lost jobs redone"
    )


def test_killing_an_api_container_fails_no_request_sent_after_the_kill(deployment: Deployment) -> None:
    wait_until(deployment.ready, READY_TIMEOUT_S, "both workers and both replicas back")
    victim = deployment.of("api")[0]

    def kill() -> float:
        podman("kill", victim.name)
        podman("wait", victim.name)  # dead once it has stopped: podman kill only sends the signal
        return time.monotonic()

    def settled(outcomes: list[Outcome], killed_at: float) -> bool:
        return sum(o.ok and o.sent_at > killed_at + 5 for o in outcomes) >= 8

    outcomes, killed_at = under_load(deployment, kill, settled, 120)
    podman("start", victim.name)  # as after the worker's kill: podman leaves it stopped
    late = [o for o in outcomes if not o.ok and o.sent_at >= killed_at]
    assert late == [], f"{len(late)} requests sent after the kill failed: {late[:5]}"
    # Only a request in flight on the killed replica may fail: at most one per stream, with 502 or
    # a connection HAProxy closed (a kept-alive one, which a client may retry on a new one).
    cut = [o for o in outcomes if not o.ok]
    assert len(cut) <= STREAMS and all(o.status in {502, None} for o in cut), cut
    accepted = [o.job_id for o in outcomes if o.job_id is not None]
    wait_until(lambda: all_done(deployment, accepted), 90, "every accepted job done")
    print(f"\nAPI kill: {len(outcomes)} requests, none sent after the kill failed, {len(cut)} cut in flight")


def test_down_and_up_keeps_the_gallery_and_the_queued_jobs(deployment: Deployment) -> None:
    wait_until(deployment.ready, READY_TIMEOUT_S, "the deployment back after the kills")
    session, url = deployment.session(), deployment.url
    reply = post(session, f"{url}/collections/kept/subjects/yao/faces", [YAO.read_bytes()])
    assert reply.status_code == 201, reply.text
    # No worker: jobs wait in Redis' queue, written to its append-only file.
    deployment.compose("stop", "worker-cpu", timeout=300)
    wait_until(lambda: deployment.online_workers() == 0, 60, "no worker online")
    queued = []
    for _ in range(3):
        reply = post(session, f"{url}/extract", [YAO.read_bytes()], **{"async": True})
        assert reply.status_code == 202, reply.text
        queued.append(reply.json()["id"])

    start = time.monotonic()
    deployment.down(volumes=False)
    assert deployment.containers() == []
    deployment.up()
    up_s = deployment.wait_ready(READY_TIMEOUT_S)
    print(f"\ndown and up: ready {time.monotonic() - start:.0f} s after down began ({up_s:.0f} s after up)")

    wait_until(lambda: all_done(deployment, queued), 120, "the queued jobs done after up")
    for job in queued:
        state = session.get(f"{url}/results/{job}", timeout=10).json()
        assert len(cast(list[Any], state["result"][0])) == FACES_IN["yaoming.jpg"], state
    body = post(session, f"{url}/collections/kept/recognize", [mirrored(YAO)]).json()
    assert body["data"][0]["faces"][0]["subject"] == "yao", body
