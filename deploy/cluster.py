"""The compose topology on one machine, without Docker: ``make cluster API=2 WORKERS=2``.

Redis (append-only), API replicas under gunicorn on loopback ports, HAProxy rendered from the
same template as compose, CPU workers (GPU workers with ``--gpus``), the webhook courier,
Flower, all started by deploy/launcher.py. A child that dies is started again, like compose's ``restart:
unless-stopped``. Ctrl-C or SIGTERM stops the cluster in order: HAProxy stops listening and the
API replicas finish their requests (which may wait for jobs), then the workers finish or hand
back theirs, then the courier and Flower, then Redis.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from deploy.haproxy import ProxyOptions, render_cluster
from deploy.launcher import ROOT, Stack, child_env, redis_answers, serve
from shared.settings import load_settings


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
    # A Redis primary, a replica and three Sentinels instead of one Redis (Redis HA).
    sentinel: bool = False
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
    stack: Stack = field(init=False)

    def __post_init__(self) -> None:
        opts = self.options
        self.stack = Stack(child_env(), opts.logs, label="cluster", stop_timeout_s=opts.stop_timeout_s)
        # 0 asks for any free port: pick them now, so that the printed and saved URLs are real.
        port = self.stack.port
        flower_port = None if opts.flower_port is None else port(opts.flower_port)
        self.options = replace(
            opts, port=port(opts.port), stats_port=port(opts.stats_port), flower_port=flower_port
        )

    def start(self) -> None:
        opts = self.options
        stack = self.stack
        opts.workdir.mkdir(parents=True, exist_ok=True)
        if opts.logs is not None:
            opts.logs.mkdir(parents=True, exist_ok=True)
        local_redis = f"redis://127.0.0.1:{opts.redis_port}/0"
        if opts.redis_url is not None:
            stack.redis_url = opts.redis_url
        elif opts.sentinel:
            stack.start_redis_sentinel(opts.workdir / "redis-ha")
        elif opts.redis_port and redis_answers(local_redis):
            # Like `make run`: a Redis already on the port (from `make run`, say) is used as is.
            print(f"cluster: using the Redis already running on port {opts.redis_port}", flush=True)
            stack.redis_url = local_redis
        else:
            redis_dir = opts.workdir / "redis"
            redis_dir.mkdir(exist_ok=True)
            stack.start_redis(stack.port(opts.redis_port), redis_dir)
        settings = load_settings(redis_url=stack.redis_url)

        apis = [
            stack.start_api(
                opts.api_base_port + i if opts.api_base_port else 0,
                name=f"api{i + 1}",
                processes=opts.api_processes,
                # The page links to Flower on the port it learns from /info (0: none). HAProxy
                # reaches the replicas from loopback: its X-Forwarded-For names the client whose
                # share a request takes with keys off (docs/security.md).
                extra_env={
                    "FACEREST_FLOWER_PORT": str(opts.flower_port or 0),
                    "FACEREST_TRUSTED_PROXIES": stack.env.get("FACEREST_TRUSTED_PROXIES", "127.0.0.1/32"),
                },
                wait=False,
            )
            for i in range(opts.api)
        ]
        proxy = ProxyOptions.from_settings(
            settings,
            bind=f"127.0.0.1:{opts.port}",
            stats_bind=f"127.0.0.1:{opts.stats_port}",
            check_inter_ms=opts.check_inter_ms,
        )
        config = opts.workdir / "haproxy.cfg"
        config.write_text(render_cluster(proxy, [api.port or 0 for api in apis]))
        haproxy = stack.start_haproxy(config, opts.port)

        devices = ["cpu"] * opts.workers + [f"cuda:{g}" for g in opts.gpus for _ in range(opts.per_gpu)]
        for i, device in enumerate(devices):
            stack.start_worker(device, name=f"worker{i + 1}-{device.replace(':', '')}", wait=False)
        stack.start_courier(wait=False)  # webhooks (docs/webhooks.md); idles without a secret
        if opts.flower_port is not None:
            # On loopback; without FACEREST_FLOWER_AUTH its made-up password goes to a file.
            stack.start_flower(opts.flower_port, wait=False)
            if not stack.env.get("FACEREST_FLOWER_AUTH"):
                stack.save_flower_password(self.flower_password_file)
        stack.wait_ready([*apis, haproxy], 30)
        self.write_state()

    @property
    def flower_password_file(self) -> Path:
        return self.options.workdir / "flower-password"

    def urls(self) -> dict[str, Any]:
        opts = self.options
        return {
            "url": f"http://127.0.0.1:{opts.port}",
            "stats": f"http://127.0.0.1:{opts.stats_port}",
            "flower": None if opts.flower_port is None else f"http://127.0.0.1:{opts.flower_port}",
            "redis_url": self.stack.redis_url,
        }

    def write_state(self) -> None:
        if self.options.state is None:
            return
        state = self.urls() | {
            "children": [
                {"name": s.name, "role": s.role, "pid": s.pid, "port": s.port, "restarts": s.restarts}
                for s in self.stack.services
            ],
        }
        tmp = self.options.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.options.state)


def _gpus(text: str) -> tuple[int, ...]:
    return tuple(int(g) for g in text.split(",") if g.strip())


def _yes(text: str) -> bool:
    return text.strip().lower() in {"1", "true", "yes", "on"}


def _flower_port(text: str) -> int | None:
    return None if int(text) < 0 else int(text)


# One flag per ClusterOptions field (--api-base-port for api_base_port; stop_timeout_s loses its
# unit): (how to read it, help). The defaults come from the dataclass.
FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "api": (int, "API replicas"),
    "workers": (int, "CPU workers"),
    "gpus": (_gpus, "GPU indices for GPU workers, e.g. 0,1"),
    "per_gpu": (int, "workers per GPU (n_con)"),
    "port": (int, "HAProxy's port (0: any free)"),
    "stats_port": (int, "HAProxy stats (0: any free)"),
    "api_base_port": (int, "first replica's port (0: any free)"),
    "redis_port": (int, "port of our Redis (0: any free)"),
    "redis_url": (str, "use this Redis instead of starting one"),
    "sentinel": (_yes, "1: a Redis primary, a replica and three Sentinels (redis+sentinel://)"),
    "flower_port": (_flower_port, "Flower's port (0: any free, -1: none)"),
    "api_processes": (int, "gunicorn processes per replica"),
    "check_inter_ms": (int, "HAProxy health-check interval"),
    "workdir": (Path, "HAProxy's config and our Redis's files"),
    "logs": (Path, "write each child's output to DIR/<name>.log"),
    "state": (Path, "keep URLs and child pids in this JSON file"),
    "stop_timeout_s": (float, "seconds a child gets to stop"),
}


def parse_args(argv: Sequence[str]) -> ClusterOptions:
    defaults = ClusterOptions()
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster", description=__doc__)
    for option in fields(ClusterOptions):
        read, text = FLAGS[option.name]
        flag = "--" + option.name.removesuffix("_s").replace("_", "-")
        parser.add_argument(
            flag, dest=option.name, type=read, default=getattr(defaults, option.name), help=text
        )
    return ClusterOptions(**vars(parser.parse_args(argv)))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    needed = ["haproxy"] if options.redis_url else ["haproxy", "redis-server"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        print(f"cluster: {', '.join(missing)} not found; run scripts/install-system-deps.sh", file=sys.stderr)
        return 2
    cluster = Cluster(options)

    def start() -> None:
        cluster.start()
        urls = cluster.urls()
        replicas = ", ".join(s.url for s in cluster.stack.services if s.role == "api")
        flower_login = (
            "FACEREST_FLOWER_AUTH"
            if cluster.stack.env.get("FACEREST_FLOWER_AUTH")
            else f"user:password in {cluster.flower_password_file}"
        )
        print(f"facerest cluster: API {urls['url']} (replicas {replicas}), stats {urls['stats']}", flush=True)
        print(
            f"  Flower {urls['flower'] or 'off'} ({flower_login}), Redis {urls['redis_url']};\n"
            "  /ready turns 200 once a worker has loaded its models. Ctrl-C stops everything.",
            flush=True,
        )

    return serve(cluster.stack, start, supervise=True, restarted=cluster.write_state)


if __name__ == "__main__":
    sys.exit(main())
