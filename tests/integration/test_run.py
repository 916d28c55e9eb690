"""``make run`` for real (``python -m deploy.run``, on free ports and its own folders): a crash
once everything is up is restarted; a service that cannot start stops them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import requests

from deploy.launcher import ROOT, free_ports, wait_until
from testkit.photos import GROUP_PHOTOS
from tests.client import b64
from tests.faces import FACES_IN

PHOTO = GROUP_PHOTOS["yaoming.jpg"]


@dataclass
class Run:
    process: subprocess.Popen[bytes]
    output: Path
    url: str
    compat_url: str  # the drop-in server for DeepStack and CompreFace clients

    def said(self) -> str:
        return self.output.read_text(errors="replace")

    def workers(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], requests.get(f"{self.url}/info", timeout=5).json()["workers"])


def launch(folder: Path, **settings: str) -> Run:
    api_port, redis_port, flower_port, compat_port = free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEREST_")}
    env |= {
        "REDIS_PORT": str(redis_port),
        "API_PORT": str(api_port),
        "FLOWER_PORT": str(flower_port),
        "FACEREST_COMPAT_PORT": str(compat_port),
        "REDIS_DIR": str(folder / "redis"),
        "API_PROCESSES": "1",
        "API_THREADS": "4",
        "FACEREST_DATA_DIR": str(folder / "data"),
        "FACEREST_FLOWER_AUTH": "admin:run-test-password",  # no password file written into var/
        "FACEREST_CONCURRENCY": "2",
        "FACEREST_INTRA_OP_THREADS": "1",
        **{f"FACEREST_{name.upper()}": value for name, value in settings.items()},
    }
    output = folder / "run.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "deploy.run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    return Run(process, output, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{compat_port}")


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    started = launch(tmp_path)
    try:
        yield started
    finally:
        if started.process.poll() is None:
            started.process.send_signal(signal.SIGINT)
            started.process.wait(90)


def extract_faces(url: str) -> int:
    body = {"images": {"data": [b64(PHOTO.read_bytes())]}}
    reply = requests.post(f"{url}/extract", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return len(reply.json()[0])


def test_a_worker_killed_after_start_is_started_again(run: Run) -> None:
    wait_until(lambda: "services are up" in run.said(), 120, "make run up")
    assert extract_faces(run.url) == FACES_IN["yaoming.jpg"]
    assert requests.get(f"{run.compat_url}/health", timeout=5).status_code == 200
    (worker,) = run.workers()

    os.kill(worker["pid"], signal.SIGKILL)
    wait_until(lambda: "worker exited (-9), restarting" in run.said(), 10, "the launcher noticing")
    wait_until(lambda: [w["pid"] for w in run.workers()] not in ([], [worker["pid"]]), 120, "a new worker")
    assert extract_faces(run.url) == FACES_IN["yaoming.jpg"]
    assert run.process.poll() is None

    run.process.send_signal(signal.SIGINT)
    assert run.process.wait(90) == 0, run.said()


def test_a_service_that_cannot_start_stops_them_all(tmp_path: Path) -> None:
    failed = launch(tmp_path, device="cuda:7")  # no such GPU here: the worker exits at start
    assert failed.process.wait(120) == 1, failed.said()
    said = failed.said()
    assert "worker exited (2) before every service was up" in said, said
    assert "restarting" not in said
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{failed.url}/health", timeout=2)
