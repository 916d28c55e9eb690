"""Start and stop facerest's processes: Redis, workers, API replicas, HAProxy and Flower.

The one place that knows their command lines, environment, readiness checks and stop order.
``make run`` (deploy.run), ``make cluster`` (deploy.cluster), the integration tests and the
benchmarks (``stack``, ``running_system``) all start their processes through a ``Stack``.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import redis

from shared.jobs import WorkerRegistry
from shared.redisconn import connect
from shared.settings import SettingsError
from shared.webhooks import courier_beat_key, courier_name

ROOT = Path(__file__).resolve().parent.parent
# Each API makes its own Prometheus directory (api/gunicorn_conf.py): an inherited one would mix
# the samples of unrelated processes.
METRICS_ENV = frozenset({"PROMETHEUS_MULTIPROC_DIR", "FACEREST_GUNICORN_METRICS_PREPARED"})
# The gunicorn apps: facerest's API, and the drop-in server for DeepStack and CompreFace clients.
API_APP = "api.app:create_app()"
COMPAT_APP = "api.compat.app:create_compat_app()"
# HAProxy stops listening while the API replicas (and the drop-in server) finish their requests
# (which may wait for jobs), then the workers finish or hand back theirs, then Flower; Redis last.
# Other roles go first.
# The user name of a Flower password made up at start (FACEREST_FLOWER_AUTH unset, loopback only).
FLOWER_USER = "facerest"
STOP_ORDER = (("haproxy", "api", "compat"), ("worker",), ("courier", "flower"), ("sentinel",), ("redis",))
# How a child that stopped as asked exits (HAProxy's soft stop is SIGUSR1).
CLEAN_EXITS = frozenset({0, -signal.SIGTERM, -signal.SIGUSR1})
# First restart waits this long, doubling on each quick crash up to RESTART_MAX_DELAY_S.
RESTART_DELAY_S = 1.0
RESTART_MAX_DELAY_S = 30.0
# A child that ran this long before dying is restarted without back-off.
STABLE_AFTER_S = 30.0
# Redis high availability (start_redis_sentinel): the name the Sentinels give the primary, how
# many Sentinels watch it (a quorum of 2 must agree it is down), and how long it may be silent.
SENTINEL_SERVICE = "facerest"
SENTINELS = 3
SENTINEL_DOWN_AFTER_MS = 3000
SENTINEL_CONFIG = """port {port}
bind 127.0.0.1
dir {dir}
sentinel monitor {service} 127.0.0.1 {primary} 2
sentinel down-after-milliseconds {service} {down_after_ms}
sentinel failover-timeout {service} 10000
sentinel parallel-syncs {service} 1
"""


def free_port(port: int = 0, taken: Collection[int] = ()) -> int:
    """``port`` itself, or for 0 a port that is free on 127.0.0.1 now and not in ``taken``.

    A port found free stays free only until something binds it, and the kernel may offer it again
    meanwhile: ports picked for several services before they start must each avoid the others
    (``Stack.port``, ``free_ports``)."""
    if port:
        return port
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            found = int(sock.getsockname()[1])
        if found not in taken:
            return found


def free_ports(count: int) -> list[int]:
    """``count`` different ports that are free on 127.0.0.1 now."""
    ports: list[int] = []
    while len(ports) < count:
        ports.append(free_port(0, ports))
    return ports


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host`` (an address to listen on)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def redis_answers(url: str) -> bool:
    try:
        return bool(connect(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def http_ok(url: str) -> bool:
    # urllib, not requests: the launcher runs from the lean install (make run), which has no
    # test tools. A non-2xx answer raises HTTPError.
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= int(response.status) < 300
    except (OSError, http.client.HTTPException):
        return False


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Call ``check`` until it is true; connection errors count as not yet."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, redis.RedisError):
            pass
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not ready after {timeout_s:.0f} s")


def child_env(isolated: bool = False, **settings: str) -> dict[str, str]:
    """This process's environment for the children, with ``settings`` as FACEREST_<NAME>.

    ``isolated`` (tests, benchmarks) drops the caller's FACEREST_* variables first, so that a
    shell's configuration cannot change what is measured.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in METRICS_ENV and not (isolated and k.startswith("FACEREST_"))
    }
    # Flower's switch for an API without credentials: never passed on (deploy/flower.py).
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    env["PYTHONUNBUFFERED"] = "1"
    env |= {f"FACEREST_{k.upper()}": v for k, v in settings.items()}
    return env


def _popen(args: Sequence[str], env: dict[str, str], log: Path | None) -> subprocess.Popen[bytes]:
    # A session of its own: a terminal's Ctrl-C reaches only the launcher, which stops the
    # children in order; and a kill of the process group takes gunicorn's workers along.
    output = None if log is None else log.open("ab")
    try:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=None if output is None else subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if output is not None:
            output.close()


@dataclass
class Service:
    """A started child process; ``log`` None means it writes to the launcher's own output."""

    name: str
    role: str
    args: list[str]
    env: dict[str, str]
    log: Path | None
    process: subprocess.Popen[bytes]
    port: int | None = None
    url: str = ""
    stop_signal: int = signal.SIGTERM
    # True once the service serves; the process having exited is checked before.
    probe: Callable[[], bool] | None = None
    started_at: float = field(default_factory=time.monotonic)
    restarts: int = 0
    restart_at: float = 0.0  # when supervise() starts it again; 0.0: not scheduled

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def ready(self) -> bool:
        if not self.running():
            raise RuntimeError(f"{self.name} exited ({self.process.returncode}):\n{self.tail()}")
        return self.probe is None or self.probe()

    def restart(self) -> None:
        """Start the same command again (after it exited)."""
        self.process = _popen(self.args, self.env, self.log)
        self.started_at = time.monotonic()
        self.restart_at = 0.0
        self.restarts += 1

    def signal(self, signum: int) -> None:
        if self.running():
            self.process.send_signal(signum)

    def wait(self, timeout_s: float) -> int:
        """Wait for exit; kill the whole process group when it outlives ``timeout_s``."""
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            print(f"{self.name} still running after {timeout_s:.0f} s, killing", file=sys.stderr)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def stop(self, signum: int | None = None, timeout_s: float = 20) -> int:
        self.signal(self.stop_signal if signum is None else signum)
        return self.wait(timeout_s)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        """What it wrote to its log so far ("" without one)."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])


@dataclass
class Stack:
    """One facerest system: a Redis and the processes started on it.

    ``logs``: each service writes ``<name>.log`` there; None: to this process's own output.
    """

    env: dict[str, str]
    logs: Path | None
    label: str = "facerest"
    redis_url: str = ""
    stop_timeout_s: float = 20.0
    services: list[Service] = field(default_factory=list)
    api_url: str = ""
    # Flower's basic auth, user:password: FACEREST_FLOWER_AUTH or one made up by start_flower.
    flower_auth: str = ""
    # Every port handed out by ``port``, so that no two services of this stack get the same one.
    ports: set[int] = field(default_factory=set)

    def port(self, port: int = 0) -> int:
        """``port`` itself, or for 0 a free port this stack has not handed out before."""
        chosen = free_port(port, self.ports)
        self.ports.add(chosen)
        return chosen

    def spawn(
        self,
        role: str,
        args: list[str],
        *,
        name: str | None = None,
        extra_env: dict[str, str] | None = None,
        port: int | None = None,
        url: str = "",
        stop_signal: int = signal.SIGTERM,
        probe: Callable[[], bool] | None = None,
    ) -> Service:
        """Start a child; its name is ``role`` (``role2``, ... after the first) unless given."""
        name = name or self._unused_name(role)
        env = {**self.env, "FACEREST_REDIS_URL": self.redis_url, **(extra_env or {})}
        log = None if self.logs is None else self.logs / f"{name}.log"
        service = Service(name, role, args, env, log, _popen(args, env, log), port, url, stop_signal, probe)
        self.services.append(service)
        return service

    def _unused_name(self, role: str) -> str:
        taken = {s.name for s in self.services}
        count = 1
        while (name := role if count == 1 else f"{role}{count}") in taken:
            count += 1
        return name

    def service(self, role: str) -> Service:
        """The first service started in this role ("redis", "worker", "api", "haproxy", "flower")."""
        return next(s for s in self.services if s.role == role)

    def client(self) -> redis.Redis:
        return connect(self.redis_url)

    def all_up(self) -> bool:
        """Whether every service answers its readiness probe now (False while one cannot be
        reached, or has exited: ``exited`` tells which)."""
        try:
            return all(s.ready() for s in self.services)
        except (OSError, redis.RedisError, RuntimeError):
            return False

    def wait_ready(self, services: Sequence[Service], timeout_s: float) -> None:
        what = ", ".join(s.name for s in services)
        wait_until(lambda: all(s.ready() for s in services), timeout_s, what)

    def _redis_server(self, port: int, directory: Path, *extra: str, loglevel: str = "notice") -> Service:
        """redis-server on 127.0.0.1 with its append-only file in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        url = f"redis://127.0.0.1:{port}/0"
        args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--loglevel", loglevel]
        args += ["--dir", str(directory), "--appendonly", "yes", "--save", "", *extra]
        return self.spawn("redis", args, port=port, probe=lambda: redis_answers(url))

    def start_redis(self, port: int, directory: Path, loglevel: str = "notice") -> Service:
        """Redis on 127.0.0.1 with its append-only file in ``directory``, ready."""
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        server = self._redis_server(port, directory, loglevel=loglevel)
        self.wait_ready([server], 10)
        return server

    def start_redis_sentinel(self, directory: Path, service: str = SENTINEL_SERVICE) -> list[Service]:
        """A Redis primary, one replica and three Sentinels that fail over to the replica when
        the primary is gone for SENTINEL_DOWN_AFTER_MS; the services follow the primary through
        ``redis+sentinel://`` (shared/redisconn.py). Returns primary, replica, sentinels."""
        primary_port, replica_port = self.port(), self.port()
        primary = self._redis_server(primary_port, directory / "primary")
        replica = self._redis_server(
            replica_port, directory / "replica", "--replicaof", "127.0.0.1", str(primary_port)
        )
        sentinels = []
        for index in range(SENTINELS):
            port = self.port()
            folder = directory / f"sentinel{index + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            config = folder / "sentinel.conf"  # Sentinel rewrites it with what it learns
            config.write_text(
                SENTINEL_CONFIG.format(
                    port=port,
                    dir=folder,
                    service=service,
                    primary=primary_port,
                    down_after_ms=SENTINEL_DOWN_AFTER_MS,
                )
            )
            url = f"redis://127.0.0.1:{port}/0"
            sentinels.append(
                self.spawn(
                    "sentinel",
                    ["redis-server", str(config), "--sentinel"],
                    port=port,
                    probe=lambda url=url: redis_answers(url),  # type: ignore[misc]
                )
            )
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
        self.redis_url = f"redis+sentinel://{hosts}/{service}/0"
        self.wait_ready([primary, replica, *sentinels], 10)
        replica_client = redis.Redis(port=replica_port)
        wait_until(lambda: replica_client.info("replication")["master_link_status"] == "up", 20, "replica")
        return [primary, replica, *sentinels]

    def restart_redis(self) -> Service:
        """Start the Redis that ``stop_redis`` stopped again, on its port and files."""
        server = self.service("redis")
        server.restart()
        self.wait_ready([server], 10)
        return server

    def stop_redis(self) -> None:
        """Stop Redis gracefully (SIGTERM: it flushes its append-only file)."""
        for service in self.services:
            if service.role == "redis":
                service.stop(timeout_s=self.stop_timeout_s)

    def workers(self) -> WorkerRegistry:
        return WorkerRegistry(self.client(), self.env.get("FACEREST_KEY_PREFIX", "facerest"))

    def worker_names(self) -> set[str]:
        """Workers online (heartbeat live, not draining)."""
        return {info.name for info in self.workers().online()}

    def start_worker(
        self,
        device: str = "cpu",
        *,
        name: str | None = None,
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Service:
        """A worker; with ``wait``, returns once it registered (its models are loaded)."""
        # Ready once a worker that was not online before is: counting would miss it when a
        # killed worker's heartbeat expires while this one loads its models.
        before = self.worker_names() if wait else set()
        args = [sys.executable, "-m", "worker", "--device", device]
        worker = self.spawn(
            "worker", args, name=name, extra_env=extra_env, probe=lambda: bool(self.worker_names() - before)
        )
        if wait:
            self.wait_ready([worker], 60)
        return worker

    def start_api(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        processes: int | None = None,
        threads: int | None = None,
        name: str | None = None,
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Service:
        """The API under gunicorn (api/gunicorn_conf.py; ``processes`` and ``threads`` override it).

        ``port`` 0: any free port. With ``wait``, returns once /health answers.
        """
        port = self.port(port)
        api = self._gunicorn("api", API_APP, port, host, processes, threads, name, extra_env, wait)
        self.api_url = self.api_url or f"http://127.0.0.1:{port}"
        return api

    def start_compat(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        processes: int | None = None,
        threads: int | None = None,
        extra_env: dict[str, str] | None = None,
        wait: bool = True,
    ) -> Service:
        """The drop-in server for DeepStack and CompreFace clients (api/compat/), as the API is run."""
        return self._gunicorn("compat", COMPAT_APP, port, host, processes, threads, None, extra_env, wait)

    def _gunicorn(
        self,
        role: str,
        app: str,
        port: int,
        host: str,
        processes: int | None,
        threads: int | None,
        name: str | None,
        extra_env: dict[str, str] | None,
        wait: bool,
    ) -> Service:
        port = self.port(port)
        url = f"http://127.0.0.1:{port}"
        args = [sys.executable, "-m", "gunicorn", "--config=python:api.gunicorn_conf"]
        args.append(f"--bind={host}:{port}")
        args += [f"--workers={processes}"] if processes else []
        args += [f"--threads={threads}"] if threads else []
        args.append(app)
        service = self.spawn(
            role,
            args,
            name=name,
            extra_env=extra_env,
            port=port,
            url=url,
            probe=lambda: http_ok(f"{url}/health"),
        )
        if wait:
            self.wait_ready([service], 30)
        return service

    def start_courier(self, *, extra_env: dict[str, str] | None = None, wait: bool = True) -> Service:
        """The webhook courier (api/courier.py); with ``wait``, returns once it swept its outbox."""
        args = [sys.executable, "-m", "api.courier"]
        prefix = {**self.env, **(extra_env or {})}.get("FACEREST_KEY_PREFIX", "facerest")
        courier: Service | None = None

        def swept() -> bool:
            name = courier_name(courier.pid if courier else 0, socket.gethostname())
            return bool(self.client().exists(courier_beat_key(prefix, name)))

        courier = self.spawn("courier", args, extra_env=extra_env, probe=swept)
        if wait:
            self.wait_ready([courier], 30)
        return courier

    def start_haproxy(self, config: Path, port: int) -> Service:
        # -W: master-worker, so SIGUSR1 soft-stops (stop listening, finish open requests).
        args = ["haproxy", "-W", "-db", "-f", str(config)]
        url = f"http://127.0.0.1:{port}"
        return self.spawn(
            "haproxy", args, port=port, url=url, stop_signal=signal.SIGUSR1, probe=lambda: port_open(port)
        )

    def start_flower(self, port: int = 0, *, host: str = "127.0.0.1", wait: bool = True) -> Service:
        """Flower on ``port`` (0: any free one) with basic auth; with ``wait``, returns once
        /healthcheck (open) answers.

        The credentials are FACEREST_FLOWER_AUTH; without it a random password is made up
        (``flower_auth``) when Flower listens on loopback only, and anywhere else it refuses.
        """
        auth = self.env.get("FACEREST_FLOWER_AUTH", "")
        if not auth:
            if not is_loopback(host):
                raise SettingsError(
                    f"Flower would listen on {host}, beyond loopback: set FACEREST_FLOWER_AUTH="
                    "user:password (its basic auth) first"
                )
            auth = f"{FLOWER_USER}:{secrets.token_urlsafe(18)}"
        self.flower_auth = auth
        port = self.port(port)
        url = f"http://127.0.0.1:{port}"
        args = [sys.executable, "-m", "deploy.flower"]
        args += [f"--address={host}", f"--port={port}"]
        flower = self.spawn(
            "flower",
            args,
            port=port,
            url=url,
            extra_env={"FACEREST_FLOWER_AUTH": auth},
            probe=lambda: http_ok(f"{url}/healthcheck"),
        )
        if wait:
            self.wait_ready([flower], 30)
        return flower

    def flower_credentials(self) -> tuple[str, str]:
        """Flower's (user, password), for a client's basic auth."""
        user, _, password = self.flower_auth.partition(":")
        return user, password

    def save_flower_password(self, path: Path) -> None:
        """Write Flower's user:password to ``path``, readable by this user only (mode 600)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # an older file keeps its mode through O_CREAT
        with os.fdopen(descriptor, "w") as file:
            file.write(self.flower_auth + "\n")

    def supervise(self) -> bool:
        """Start again, after a back-off, every service that exited; True when one was started."""
        now = time.monotonic()
        started = False
        for service in self.services:
            if service.running():
                continue
            if service.restart_at == 0.0:
                quick = now - service.started_at < STABLE_AFTER_S
                delay = RESTART_DELAY_S * 2 ** min(service.restarts, 5) if quick else RESTART_DELAY_S
                delay = min(delay, RESTART_MAX_DELAY_S)
                service.restart_at = now + delay
                code = service.process.returncode
                print(
                    f"{self.label}: {service.name} exited ({code}), restarting in {delay:.0f} s",
                    file=sys.stderr,
                )
            elif now >= service.restart_at:
                service.restart()
                started = True
        return started

    def exited(self) -> Service | None:
        return next((s for s in self.services if not s.running()), None)

    def stop(self) -> int:
        """Stop every service in STOP_ORDER; return how many had to be killed or failed."""
        step = {role: i for i, roles in enumerate(STOP_ORDER) for role in roles}
        bad = 0
        for i in range(len(STOP_ORDER)):
            group = [s for s in self.services if step.get(s.role, 0) == i]
            for service in group:
                service.signal(service.stop_signal)
            for service in group:
                code = service.wait(self.stop_timeout_s)
                if code not in CLEAN_EXITS:
                    print(f"{self.label}: {service.name} exited with {code}", file=sys.stderr)
                    bad += 1
        return bad


@contextmanager
def stack(workdir: Path, **settings: str) -> Iterator[Stack]:
    """An isolated system: its own Redis on a free port, append-only file and logs in ``workdir``.

    The services get ``settings`` as FACEREST_<NAME> instead of the caller's FACEREST_* variables.
    Everything started on it stops at exit, Redis last.
    """
    with isolated(workdir, settings) as result:
        result.start_redis(result.port(), workdir)
        yield result


@contextmanager
def isolated(workdir: Path, settings: dict[str, str]) -> Iterator[Stack]:
    """A stack with no Redis yet, its files in ``workdir`` and ``settings`` as its only FACEREST_*."""
    workdir.mkdir(parents=True, exist_ok=True)
    # The services' files (the embedded gallery) stay in the stack's folder, not in ./var.
    settings = {"data_dir": str(workdir)} | settings
    result = Stack(child_env(isolated=True, **settings), workdir, label="stack")
    try:
        yield result
    finally:
        result.stop()


@contextmanager
def running_system(workdir: Path | None = None, **settings: str) -> Iterator[Stack]:
    """Redis, one worker and the API, ready to serve; in a temporary folder unless given one."""
    with ExitStack() as exits:
        folder = workdir or Path(exits.enter_context(tempfile.TemporaryDirectory()))
        running = exits.enter_context(stack(folder, **settings))
        running.start_worker()
        running.start_api()
        yield running


def serve(
    system: Stack,
    start: Callable[[], None],
    supervise: bool = False,
    restarted: Callable[[], None] | None = None,
) -> int:
    """Run ``start``, then keep the system up until SIGINT or SIGTERM and stop it; the exit status.

    Until every service has answered its readiness probe once, a service that exits stops them
    all: that is a start-up failure (a bad setting, a port in use), which restarting would only
    repeat. Once all are up, with ``supervise`` a service that exits is started again after a
    back-off (then ``restarted`` is called); without, the first one to exit stops them all.
    """
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        start()
    except (SettingsError, TimeoutError, OSError, RuntimeError) as exc:
        print(f"{system.label}: {exc}", file=sys.stderr)
        system.stop()
        return 1
    up = failed = False
    while not stopping.wait(0.2):
        if up and supervise:
            if system.supervise() and restarted is not None:
                restarted()
            continue
        if (gone := system.exited()) is not None:
            when = "" if up else " before every service was up"
            print(f"{system.label}: {gone.name} exited ({gone.process.returncode}){when}", file=sys.stderr)
            failed = True
            break
        if not up and system.all_up():
            up = True
            print(f"{system.label}: all {len(system.services)} services are up", flush=True)
    print(f"{system.label}: stopping...", flush=True)
    bad = system.stop()
    print(f"{system.label}: stopped" + (f" ({bad} children did not stop cleanly)" if bad else ""), flush=True)
    return 1 if bad or failed else 0
