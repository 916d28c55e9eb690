"""The compose topology on one machine, without Docker: ``make cluster API=2 WORKERS=2``.

Redis (append-only), API replicas under gunicorn on loopback ports, HAProxy rendered from the
same template as compose, CPU workers (GPU workers with ``--gpus``), Flower. A child that dies
is started again, like compose's ``restart: unless-stopped``. Ctrl-C or SIGTERM stops the
cluster in order: HAProxy stops listening and the API replicas finish their requests (which may
wait for jobs), then the workers finish or hand back theirs, then Flower, then Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from deploy.haproxy import ProxyOptions, render_cluster
from shared.settings import SettingsError, load_settings

# Each API replica makes its own Prometheus directory: a shared one would mix their samples.
METRICS_ENV = frozenset({"PROMETHEUS_MULTIPROC_DIR", "FACEREST_GUNICORN_METRICS_PREPARED"})

ROOT = Path(__file__).resolve().parent.parent
# First restart waits this long, doubling on each quick crash up to RESTART_MAX_DELAY_S.
RESTART_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
# A child that ran this long before dying is restarted without back-off.
STABLE_AFTER_S = 30.0


METRICS_ENV = frozenset({"PROMETHEUS_MULTIPROC_DIR", "FACEREST_GUNICORN_METRICS_PREPARED"})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not up after {timeout_s:.0f} s")
        time.sleep(0.1)


@dataclass
class Child:
    """One supervised process, in its own session so a terminal's Ctrl-C reaches only us."""

    name: str
    role: str
    args: list[str]
    env: dict[str, str]
    log_dir: Path | None
    stop_signal: int = signal.SIGTERM
    port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    next_start: float = 0.0

    def start(self) -> None:
        output: Any = None
        if self.log_dir is not None:
            output = (self.log_dir / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT if output is not None else None,
            start_new_session=True,
        )
        if output is not None:
            output.close()
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running():
            assert self.process is not None
            self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int | None:
        """Wait for exit; kill the whole process group when it outlives ``timeout_s``."""
        if self.process is None:
            return None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            print(f"cluster: {self.name} still running after {timeout_s:.0f} s, killing", file=sys.stderr)
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


@dataclass(frozen=True, slots=True)
class ClusterOptions:
    api: int = 2
    workers: int = 2
    gpus: tuple[int, ...] = ()
    per_gpu: int = 1
    port: int = 18081
    stats_port: int = 8404
    api_base_port: int = 18091
    redis_port: int = 6379
    redis_url: str | None = None
    flower_port: int | None = 5555
    api_processes: int = 2
    check_inter_ms: int = 2000
    workdir: Path = ROOT / "var" / "cluster"
    logs: Path | None = None
    state: Path | None = None
    stop_timeout_s: float = 60.0


@dataclass
class Cluster:
    options: ClusterOptions
    children: list[Child] = field(default_factory=list)
    redis_url: str = ""
    api_ports: list[int] = field(default_factory=list)

    def _port(self, wanted: int) -> int:
        return wanted or free_port()

    def _env(self) -> dict[str, str]:
        # Each API replica makes its own Prometheus directory: a shared one would mix their samples.
        env = {k: v for k, v in os.environ.items() if k not in METRICS_ENV}
        env |= {
            "FACEREST_REDIS_URL": self.redis_url,
            "PYTHONUNBUFFERED": "1",
            "FLOWER_UNAUTHENTICATED_API": env.get("FLOWER_UNAUTHENTICATED_API", "true"),
        }
        return env

    def _add(self, name: str, role: str, args: list[str], port: int | None = None, stop: int = 0) -> Child:
        child = Child(name, role, args, self._env(), self.options.logs, stop or signal.SIGTERM, port)
        self.children.append(child)
        child.start()
        return child

    def start(self) -> None:
        opts = self.options
        opts.workdir.mkdir(parents=True, exist_ok=True)
        if opts.logs is not None:
            opts.logs.mkdir(parents=True, exist_ok=True)
        python = sys.executable
        if opts.redis_url is None and opts.redis_port and port_open(opts.redis_port):
            # Like `make run`: a Redis already on the port (from `make run`, say) is used as is.
            print(f"cluster: using the Redis already running on port {opts.redis_port}", flush=True)
            self.redis_url = f"redis://127.0.0.1:{opts.redis_port}/0"
        elif opts.redis_url is None:
            redis_port = self._port(opts.redis_port)
            self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
            redis_dir = opts.workdir / "redis"
            redis_dir.mkdir(exist_ok=True)
            redis_args = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1"]
            redis_args += ["--dir", str(redis_dir), "--appendonly", "yes", "--save", ""]
            self._add("redis", "redis", redis_args, redis_port)
            wait_for(partial(port_open, redis_port), 10, "Redis")
        else:
            self.redis_url = opts.redis_url
        settings = load_settings(redis_url=self.redis_url)

        self.api_ports = [
            self._port(opts.api_base_port + i if opts.api_base_port else 0) for i in range(opts.api)
        ]
        for i, port in enumerate(self.api_ports):
            api_args = [python, "-m", "gunicorn", "--config", "python:api.gunicorn_conf"]
            api_args += [
                f"--bind=127.0.0.1:{port}",
                f"--workers={opts.api_processes}",
                "api.app:create_app()",
            ]
            self._add(f"api{i + 1}", "api", api_args, port)

        proxy = ProxyOptions.from_settings(
            settings,
            bind=f"127.0.0.1:{opts.port}",
            stats_bind=f"127.0.0.1:{opts.stats_port}",
            check_inter_ms=opts.check_inter_ms,
        )
        config = opts.workdir / "haproxy.cfg"
        config.write_text(render_cluster(proxy, self.api_ports))
        # -W: master-worker, so SIGUSR1 soft-stops (stop listening, finish open requests).
        self._add(
            "haproxy", "haproxy", ["haproxy", "-W", "-db", "-f", str(config)], opts.port, signal.SIGUSR1
        )

        devices = ["cpu"] * opts.workers + [f"cuda:{g}" for g in opts.gpus for _ in range(opts.per_gpu)]
        for i, device in enumerate(devices):
            name = f"worker{i + 1}-{device.replace(':', '')}"
            self._add(name, "worker", [python, "-m", "worker", "--device", device])
        if opts.flower_port is not None:
            flower_args = [python, "-m", "celery", "--broker", self.redis_url, "flower"]
            flower_args += ["--address=127.0.0.1", f"--port={opts.flower_port}"]
            self._add("flower", "flower", flower_args, opts.flower_port)
        for port in [*self.api_ports, opts.port]:
            wait_for(partial(port_open, port), 30, f"port {port}")
        self.write_state()

    def urls(self) -> dict[str, Any]:
        opts = self.options
        return {
            "url": f"http://127.0.0.1:{opts.port}",
            "stats": f"http://127.0.0.1:{opts.stats_port}",
            "flower": None if opts.flower_port is None else f"http://127.0.0.1:{opts.flower_port}",
            "redis_url": self.redis_url,
        }

    def write_state(self) -> None:
        if self.options.state is None:
            return
        state = self.urls() | {
            "children": [
                {"name": c.name, "role": c.role, "pid": c.pid, "port": c.port, "restarts": c.restarts}
                for c in self.children
            ],
        }
        tmp = self.options.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.options.state)

    def supervise(self) -> None:
        """Start again every child that exited; called in a loop until stop."""
        now = time.monotonic()
        changed = False
        for child in self.children:
            if child.running() or child.process is None:
                continue
            if child.next_start == 0.0:
                quick = now - child.started_at < STABLE_AFTER_S
                delay = RESTART_DELAY_S * 2 ** min(child.restarts, 5) if quick else RESTART_DELAY_S
                child.next_start = now + min(delay, RESTART_MAX_DELAY_S)
                code = child.process.returncode
                print(f"cluster: {child.name} exited ({code}), restarting in {delay:.0f} s", file=sys.stderr)
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()
                changed = True
        if changed:
            self.write_state()

    def stop(self) -> int:
        """Stop in dependency order; return how many children had to be killed or failed."""
        timeout = self.options.stop_timeout_s
        bad = 0

        def stop_role(*roles: str) -> None:
            nonlocal bad
            group = [c for c in self.children if c.role in roles]
            for child in group:
                child.signal(child.stop_signal)
            for child in group:
                code = child.wait(timeout)
                if code not in (0, None, -signal.SIGTERM, -signal.SIGUSR1):
                    print(f"cluster: {child.name} exited with {code}", file=sys.stderr)
                    bad += 1

        stop_role("haproxy", "api")
        stop_role("worker")
        stop_role("flower")
        stop_role("redis")
        return bad


def parse_args(argv: Sequence[str]) -> ClusterOptions:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__)
    parser.add_argument("--api", type=int, default=2, help="API replicas")
    parser.add_argument("--workers", type=int, default=2, help="CPU workers")
    parser.add_argument("--gpus", default="", help="GPU indices for GPU workers, e.g. 0,1")
    parser.add_argument("--per-gpu", type=int, default=1, help="workers per GPU (n_con)")
    parser.add_argument("--port", type=int, default=18081, help="HAProxy's port (0: any free)")
    parser.add_argument("--stats-port", type=int, default=8404, help="HAProxy stats (0: any free)")
    parser.add_argument("--api-base-port", type=int, default=18091, help="first replica's port (0: any free)")
    parser.add_argument("--redis-port", type=int, default=6379, help="port of our Redis (0: any free)")
    parser.add_argument("--redis-url", help="use this Redis instead of starting one")
    parser.add_argument("--flower-port", type=int, default=5555, help="Flower's port (0: any free, -1: none)")
    parser.add_argument("--api-processes", type=int, default=2, help="gunicorn processes per replica")
    parser.add_argument("--check-inter-ms", type=int, default=2000, help="HAProxy health-check interval")
    parser.add_argument("--workdir", type=Path, default=ROOT / "var" / "cluster")
    parser.add_argument("--logs", type=Path, help="write each child's output to DIR/<name>.log")
    parser.add_argument("--state", type=Path, help="keep URLs and child pids in this JSON file")
    parser.add_argument("--stop-timeout", type=float, default=60.0, help="seconds a child gets to stop")
    args = parser.parse_args(argv)

    def pick(port: int) -> int:
        return port or free_port()

    return ClusterOptions(
        api=args.api,
        workers=args.workers,
        gpus=tuple(int(g) for g in args.gpus.split(",") if g.strip()),
        per_gpu=args.per_gpu,
        port=pick(args.port),
        stats_port=pick(args.stats_port),
        api_base_port=args.api_base_port,
        redis_port=args.redis_port,
        redis_url=args.redis_url,
        flower_port=None if args.flower_port < 0 else pick(args.flower_port),
        api_processes=args.api_processes,
        check_inter_ms=args.check_inter_ms,
        workdir=args.workdir,
        logs=args.logs,
        state=args.state,
        stop_timeout_s=args.stop_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    needed = ["haproxy"] if options.redis_url else ["haproxy", "redis-server"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        print(f"cluster: {', '.join(missing)} not found; run scripts/install-system-deps.sh", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = Cluster(options)
    try:
        cluster.start()
    except (SettingsError, TimeoutError, OSError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        cluster.stop()
        return 1
    urls = cluster.urls()
    replicas = ", ".join(f"http://127.0.0.1:{p}" for p in cluster.api_ports)
    print(f"facerest cluster: API {urls['url']} (replicas {replicas}), stats {urls['stats']}", flush=True)
    print(f"  Flower {urls['flower'] or 'off'}, Redis {urls['redis_url']}; /ready turns 200 once a worker")
    print("  has loaded its models. Ctrl-C stops everything.", flush=True)
    while not stopping.wait(0.2):
        cluster.supervise()
    print("cluster: stopping...", flush=True)
    bad = cluster.stop()
    print("cluster: stopped" + (f" ({bad} children did not stop cleanly)" if bad else ""), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
