"""Real processes for integration tests: a Redis server, workers, the API under gunicorn, Flower."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError, requests.RequestException):
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s} s")


@dataclass
class Service:
    """A started process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Stack:
    """One isolated facerest system: its own Redis, and the processes started on it."""

    workdir: Path
    redis_port: int
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)
    api_url: str = ""

    def service(self, name: str) -> Service:
        """The first service started under this name ("redis", "worker", "api", "flower")."""
        return next(s for s in self.services if s.name == name)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def spawn(self, name: str, args: list[str], extra_env: dict[str, str] | None = None) -> Service:
        log = self.workdir / f"{name}-{len(self.services)}.log"
        # The child keeps its own copy of the file descriptor; ours is closed at once.
        with log.open("wb") as output:
            process = subprocess.Popen(
                args,
                cwd=ROOT,
                env={**self.env, **(extra_env or {})},
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        service = Service(name, process, log)
        self.services.append(service)
        return service

    def start_worker(self, extra_env: dict[str, str] | None = None, timeout_s: float = 60) -> Service:
        before = self.worker_count()
        worker = self.spawn("worker", [str(BIN / "python"), "-m", "worker", "--device", "cpu"], extra_env)

        def registered() -> bool:
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{worker.tail()}")
            return self.worker_count() > before

        wait_until(registered, timeout_s, "worker")
        return worker

    def worker_count(self) -> int:
        return sum(1 for _ in self.client().scan_iter(match="facerest:worker:*"))

    def start_api(self, extra_env: dict[str, str] | None = None) -> Service:
        port = free_port()
        api = self.spawn(
            "api",
            [
                str(BIN / "gunicorn"),
                "--config=python:api.gunicorn_conf",
                f"--bind=127.0.0.1:{port}",
                "api.app:create_app()",
            ],
            extra_env,
        )
        api.url = f"http://127.0.0.1:{port}"
        self.api_url = self.api_url or api.url
        wait_until(lambda: requests.get(f"{api.url}/health", timeout=1).ok, 30, "API")
        return api

    def start_flower(self) -> str:
        port = free_port()
        self.spawn(
            "flower",
            [
                str(BIN / "celery"),
                "--broker",
                self.redis_url,
                "flower",
                "--address=127.0.0.1",
                f"--port={port}",
            ],
            {"FLOWER_UNAUTHENTICATED_API": "true"},
        )
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: requests.get(f"{url}/healthcheck", timeout=1).ok, 30, "Flower")
        return url

    def start_redis(self) -> Service:
        """Redis with its append-only file on, in the stack's directory; always stopped last."""
        args = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.workdir), "--appendonly", "yes", "--save", ""]
        server = self.spawn("redis", args)
        self.services.remove(server)
        self.services.insert(0, server)
        wait_until(lambda: bool(self.client().ping()), 10, "redis")
        return server

    def stop_redis(self) -> None:
        """Stop Redis gracefully (SIGTERM: it flushes its append-only file)."""
        for service in self.services:
            if service.name == "redis" and service.process.poll() is None:
                service.stop()

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop()


@contextmanager
def stack(workdir: Path, **settings: str) -> Iterator[Stack]:
    """Start a Redis server on a free port; stop everything started on it at exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # Each API makes its own Prometheus directory (api/gunicorn_conf.py); never inherit one.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FACEREST_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env |= {"FACEREST_REDIS_URL": f"redis://127.0.0.1:{port}/0", "PYTHONUNBUFFERED": "1"}
    env |= {f"FACEREST_{k.upper()}": v for k, v in settings.items()}
    result = Stack(workdir, port, env)
    try:
        result.start_redis()
        yield result
    finally:
        result.stop_all()


@contextmanager
def running_system(workdir: Path | None = None, **settings: str) -> Iterator[Stack]:
    """Redis, one worker and the API, ready to serve; in a temporary folder unless given one."""
    with ExitStack() as exits:
        folder = workdir or Path(exits.enter_context(tempfile.TemporaryDirectory()))
        running = exits.enter_context(stack(folder, **settings))
        running.start_worker()
        running.start_api()
        yield running
