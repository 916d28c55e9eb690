"""The worker's pipeline in-process over the workload, with its per-stage times: a target for
profilers.

    python -m bench.profile [--passes 3] [--photos DIR --limit 400]
    py-spy record -r 100 -f speedscope -o profile.json -- python -m bench.profile --passes 10

Prints images/s and the mean decode, detect, align and embed time per image (the pipeline's own
``verbose_timings``), and the embed time per face.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.workload import workload
from shared.contract import AnalysisOptions
from shared.settings import load_settings
from worker.inference.session import Device
from worker.loader import load_analyzer

STAGES = ("decode_ms", "detect_ms", "align_ms", "embed_ms")
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument(
        "--photos", type=Path, help="the photos of this folder and below instead of the workload (sorted)"
    )
    parser.add_argument("--limit", type=int, default=400, help="with --photos: the first N")
    args = parser.parse_args()
    analyzer = load_analyzer(load_settings(), Device("cpu"))
    options = AnalysisOptions(threshold=0.5, verbose_timings=True)
    items = (
        [
            path.read_bytes()
            for path in sorted(p for p in args.photos.rglob("*") if p.suffix in PHOTO_SUFFIXES)
        ][: args.limit]
        if args.photos
        else [item.jpeg for item in workload()]
    )
    for item in items[:3]:  # warm-up
        analyzer.analyze([item], options)
    totals = dict.fromkeys(STAGES, 0.0)
    faces = 0
    start = time.perf_counter()
    for _ in range(args.passes):
        for item in items:
            (record,) = analyzer.analyze([item], options)
            faces += len(record.faces)
            for stage in STAGES:
                totals[stage] += (record.timings or {}).get(stage, 0.0)
    elapsed = time.perf_counter() - start
    images = args.passes * len(items)
    print(f"{images / elapsed:.2f} images/s, {faces / elapsed:.1f} faces/s")
    print(" | ".join(f"{stage} {totals[stage] / images:.1f}" for stage in STAGES), "(per image)")
    print(f"embed per face {totals['embed_ms'] / max(faces, 1):.2f} ms")
    analyzer.close()


if __name__ == "__main__":
    main()
