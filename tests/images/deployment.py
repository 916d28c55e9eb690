"""A compose deployment of the built images, driven with podman-compose (tests/images only).

One compose project, PROJECT, which make test-images brings down (volumes included) before and
after its run; the published ports are picked free on this machine, never the fixed defaults.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import requests

from deploy.haproxy import COMPOSE_CONFIG
from deploy.launcher import ROOT, free_ports

PROJECT = "facerest-images-test"
CONTAINERS_CONF = ROOT / "docker" / "podman" / "containers.conf"
# scripts/build-images.sh writes the base images it built or chose (REDIS_IMAGE, ...).
BASE_ENV = ROOT / "var" / "images" / "base.env"
COMPOSE_BIN = Path(sys.executable).with_name("podman-compose")
# What the test deploys: compose.yaml's services, with these counts.
API_REPLICAS = 2
CPU_WORKERS = 2
EXPECTED = {
    "redis": 1,
    "api": API_REPLICAS,
    "haproxy": 1,
    "worker-cpu": CPU_WORKERS,
    "flower": 1,
    "compat": 1,
    "courier": 1,
}
# Containers that run facerest (or Flower) and read the settings file.
FACEREST_SERVICES = ("api", "worker-cpu", "flower", "compat", "courier")
SYNC_TIMEOUT_S = 60  # in the settings file: every facerest container must see it


def compose_env_base() -> dict[str, str]:
    """This shell's environment without FACEREST_* settings, with podman's project config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEREST_")}
    env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    return env


def compose_command(*args: str) -> list[str]:
    return [str(COMPOSE_BIN), "-p", PROJECT, "-f", str(ROOT / "compose.yaml"), *args]


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args],
        capture_output=True,
        text=True,
        env=compose_env_base(),
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


@dataclass
class Container:
    name: str
    service: str
    running: bool


@dataclass
class Deployment:
    workdir: Path
    http_port: int = 0
    stats_port: int = 0
    flower_port: int = 0
    compat_port: int = 0
    api_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    flower_auth: str = field(default_factory=lambda: f"ci:{secrets.token_urlsafe(16)}")

    @property
    def env_file(self) -> Path:
        return self.workdir / "facerest.env"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def env(self) -> dict[str, str]:
        env = compose_env_base()
        for line in BASE_ENV.read_text().splitlines():
            key, _, value = line.partition("=")
            env[key] = value
        env |= {
            "FACEREST_ENV_FILE": str(self.env_file),
            "API_REPLICAS": str(API_REPLICAS),
            "CPU_WORKERS": str(CPU_WORKERS),
            "CPU_CONCURRENCY": "2",
            "HTTP_PORT": str(self.http_port),
            "STATS_PORT": str(self.stats_port),
            "FLOWER_PUBLISH_PORT": str(self.flower_port),
            "COMPAT_PORT": str(self.compat_port),
        }
        return env

    def compose(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run(
            compose_command(*args),
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"podman-compose {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def prepare(self) -> None:
        """The settings file, as deploy.sh would make it, and HAProxy's config rendered from it."""
        if not BASE_ENV.is_file():
            raise RuntimeError(f"{BASE_ENV} is missing: build the images first (scripts/build-images.sh)")
        self.http_port, self.stats_port, self.flower_port, self.compat_port = free_ports(4)
        self.env_file.write_text(
            f"FACEREST_API_KEYS={self.api_key}\n"
            f"FACEREST_FLOWER_AUTH={self.flower_auth}\n"
            f"FACEREST_SYNC_TIMEOUT_S={SYNC_TIMEOUT_S}\n"
            # Two workers, two API replicas, Redis, HAProxy and Flower share this machine's cores.
            "FACEREST_INTRA_OP_THREADS=1\n"
        )
        # deploy.sh renders it in a container of the API image: no project Python on the host.
        result = subprocess.run(
            [str(ROOT / "deploy.sh"), "render"],
            cwd=ROOT,
            env=self.env() | {"ENGINE": "podman"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"deploy.sh render failed:\n{result.stdout}\n{result.stderr}")
        if not COMPOSE_CONFIG.is_file():
            raise RuntimeError(f"deploy.sh render wrote no {COMPOSE_CONFIG}")

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")

    def containers(self) -> list[Container]:
        result = podman(
            "ps", "-a", "--filter", f"label=io.podman.compose.project={PROJECT}", "--format", "json"
        )
        found = []
        for entry in cast(list[dict[str, Any]], json.loads(result.stdout or "[]")):
            labels = entry.get("Labels") or {}
            found.append(
                Container(
                    entry["Names"][0],
                    labels.get("com.docker.compose.service", ""),
                    entry["State"] == "running",
                )
            )
        return sorted(found, key=lambda c: c.name)

    def of(self, service: str) -> list[Container]:
        return [c for c in self.containers() if c.service == service]

    def session(self) -> requests.Session:
        session = requests.Session()
        session.headers["X-API-Key"] = self.api_key
        return session

    def haproxy_servers(self) -> dict[str, str]:
        """HAProxy's view of backend ``api``: server name -> status (UP, DOWN, MAINT)."""
        reply = requests.get(f"http://127.0.0.1:{self.stats_port}/;csv", timeout=5)
        rows = csv.DictReader(io.StringIO(reply.text.lstrip("# ")))
        return {
            row["svname"]: row["status"]
            for row in rows
            if row["pxname"] == "api" and row["svname"] not in {"FRONTEND", "BACKEND"}
        }

    def online_workers(self) -> int:
        reply = self.session().get(f"{self.url}/info", timeout=5)
        return len(reply.json()["workers"]) if reply.ok else 0

    def ready(self) -> bool:
        """Every container runs, both workers beat, and HAProxy routes to both API replicas."""
        containers = self.containers()
        counts = {service: sum(c.service == service for c in containers) for service in EXPECTED}
        if counts != EXPECTED or not all(c.running for c in containers):
            return False
        up = [name for name, status in self.haproxy_servers().items() if status == "UP"]
        return len(up) == API_REPLICAS and self.online_workers() == CPU_WORKERS

    def wait_ready(self, timeout_s: float) -> float:
        start = time.monotonic()
        deadline = start + timeout_s
        while time.monotonic() < deadline:
            try:
                if self.ready():
                    return time.monotonic() - start
            except (requests.RequestException, RuntimeError, ValueError, KeyError):
                pass
            time.sleep(1)
        states = "\n".join(
            f"  {c.name} ({c.service}): {'running' if c.running else 'stopped'}" for c in self.containers()
        )
        raise TimeoutError(
            f"the deployment was not ready after {timeout_s:.0f} s:\n{states}\n{self.logs(30)}"
        )

    def logs(self, lines: int = 200) -> str:
        out = []
        for container in self.containers():
            result = podman("logs", "--tail", str(lines), container.name, check=False)
            out.append(f"--- {container.name}\n{result.stdout}{result.stderr}")
        return "\n".join(out)

    def save_logs(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for container in self.containers():
            result = podman("logs", container.name, check=False)
            (directory / f"{container.name}.log").write_text(result.stdout + result.stderr)

    def stop_each(self) -> dict[str, float]:
        """Stop every container, in the order deploy.sh down stops services; seconds each took.
        Compose's own down hides which one waits out its stop_grace_period."""
        took = {}
        for service in ("haproxy", "api", "flower", "worker-cpu", "redis"):
            for container in self.of(service):
                start = time.monotonic()
                podman("stop", container.name, check=False, timeout=300)
                took[container.name] = round(time.monotonic() - start, 1)
        return took

    def down(self, volumes: bool) -> None:
        self.compose("down", *(["-v"] if volumes else []), timeout=300)
