"""Calibrate int8 ArcFace MBF on CFP and write its quantization ranges (the recognizer arcface_int8).

    python -m bench.cfp /path/to/DR-GAN-by-pytorch      # once: the photos, outside the repo
    python -m bench.int8_calibrate [--cfp /work/data/cfp] [--lowest 0.993]
    python -m bench.int8_calibrate --check                # the committed file only: accuracy, speed
    python -m bench.int8_calibrate --breakdown            # where int8 loses: parts of it in int8

CFP (bench/cfp.py) is no test photo. Each frontal photo's largest face is aligned as the worker
aligns it. People 1-300 calibrate: photos 1 and 6, as they are, mirrored, and downscaled to 20-48
px and back (small faces in group photos are where int8 loses most). NNCF measures the activation
ranges on them. People 301-500 validate: operations go back to fp32, the most harmful first, until
the lowest cosine between int8 and fp32 embeddings over them (as they are, mirrored, downscaled) is
``--lowest``. The validation runs the network exactly as the worker will: rebuilt from the ranges.

What is written (worker/inference/quantization/w600k_mbf_int8.json) is ranges, not weights: which
tensors are quantized and to what range, and which convolutions get int8 weights
(worker/inference/int8.py rebuilds the network from the verified fp32 file). The file's SHA-256
goes into the registry (ARCFACE_MBF_INT8); this prints it.

Then, on the rebuilt network: the cosine to fp32 on the CFP faces held out and on every face of the
package photos (the test photos, never seen by the calibration) and mirrored copies, and the time
per face at batch 8, fp32 and int8 calls taking turns.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from bench.cfp import DEFAULT_OUT, Photo, photos
from bench.timing import alternating_ms
from testkit.photos import GROUP_PHOTOS, read_rgb
from worker.imaging.align import ARCFACE_SIZE, arcface_template, warp_to_template
from worker.imaging.resize import letterbox
from worker.inference.files import locate, quantization_path
from worker.inference.int8 import ActivationRange, Ranges, quantize
from worker.inference.registry import ARCFACE_MBF, ARCFACE_MBF_INT8, SCRFD_500M
from worker.inference.session import Device, create_session
from worker.models.scrfd import SCRFD

FloatArray = NDArray[np.float32]
CALIBRATION_PEOPLE = 300
PHOTOS = (1, 6)
CANVAS = 256  # CFP faces fill the frame: a small canvas finds them all
STEM, HEAD = 6, 10  # operations kept in fp32 at the start and the end (accurate_subset)
CONFIG = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}  # as the worker's


def unit(vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.asarray(vectors / np.linalg.norm(vectors, axis=-1, keepdims=True), np.float32)


def face_blob() -> NDArray[np.float32]:
    """Every face of the package photos (the test photos), aligned as the worker aligns it."""
    detector = SCRFD(create_session(locate(SCRFD_500M), Device("cpu")), SCRFD_500M)
    crops = []
    for path in GROUP_PHOTOS.values():
        rgb = read_rgb(path)
        boxed = letterbox(rgb, (640, 640))
        (found,) = detector.detect_batch([boxed.canvas], [0.5])
        keypoints = found.scaled(1 / boxed.scale).keypoints
        crops += [warp_to_template(rgb, k, arcface_template(), ARCFACE_SIZE) for k in keypoints]
    blob = cv2.dnn.blobFromImages(crops, 1 / 127.5, (112, 112), (127.5,) * 3, swapRB=False)
    return np.asarray(blob, np.float32)


def aligned_faces(frontal: Iterable[Photo]) -> tuple[FloatArray, NDArray[np.intp]]:
    """The largest face of each photo, aligned to 112x112 and scaled as ArcFace reads it."""
    detector = SCRFD(create_session(locate(SCRFD_500M), Device("cpu")), SCRFD_500M)
    crops, people = [], []
    for photo in frontal:
        rgb = read_rgb(photo.path)
        boxed = letterbox(rgb, (CANVAS, CANVAS))
        (found,) = detector.detect_batch([boxed.canvas], [0.5])
        if len(found.boxes) == 0:
            continue
        found = found.scaled(1 / boxed.scale)
        areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
        keypoints = found.keypoints[int(np.argmax(areas))]
        crops.append(warp_to_template(rgb, keypoints, arcface_template(), ARCFACE_SIZE))
        people.append(photo.person)
    blob = cv2.dnn.blobFromImages(crops, 1 / 127.5, (112, 112), (127.5,) * 3, swapRB=False)
    return np.asarray(blob, np.float32), np.array(people, np.intp)


def downscaled(face: FloatArray, rng: np.random.Generator) -> FloatArray:
    """``face`` as a small face in a photo: down to 20-48 px and back up."""
    image = np.asarray((face.transpose(1, 2, 0) + 1) * 127.5, np.uint8)
    side = int(rng.integers(20, 49))
    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    restored = cv2.resize(small, (112, 112), interpolation=cv2.INTER_LINEAR)
    return np.asarray((restored.astype(np.float32) / 127.5 - 1).transpose(2, 0, 1), np.float32)


def variants(faces: FloatArray, seed: int) -> FloatArray:
    """Each face as it is, mirrored, and downscaled."""
    rng = np.random.default_rng(seed)
    small = np.stack([downscaled(face, rng) for face in faces])
    return np.ascontiguousarray(np.concatenate([faces, faces[:, :, :, ::-1], small]))


def fp32_model() -> Any:
    import openvino as ov

    model = ov.Core().read_model(str(locate(ARCFACE_MBF)))
    model.reshape({port.get_any_name(): ov.PartialShape([-1, 3, 112, 112]) for port in model.inputs})
    return model


def statistics(calibration: FloatArray) -> Any:
    """NNCF's int8 network of every layer: its activation ranges are what we keep of it."""
    import nncf

    return nncf.quantize(
        fp32_model(),
        nncf.Dataset([calibration[i : i + 1] for i in range(len(calibration))]),
        subset_size=len(calibration),
        preset=nncf.QuantizationPreset.MIXED,
    )


def restricted(ranges: Ranges, units: set[str]) -> Ranges:
    """``ranges`` with only the operations in ``units`` reading quantized tensors or weights."""
    activations = []
    for entry in ranges.activations:
        consumers = tuple(consumer for consumer in entry.consumers if consumer[0] in units)
        if consumers:
            activations.append(dataclasses.replace(entry, consumers=consumers))
    return Ranges(ranges.network, tuple(activations), tuple(w for w in ranges.weights if w in units))


class Judge:
    """Cosines of a rebuilt int8 network's embeddings to fp32's, on the validation faces."""

    def __init__(self, faces: FloatArray) -> None:
        import openvino as ov

        self._core = ov.Core()
        self._faces = faces
        self.reference = self.embed(fp32_model(), faces)

    def embed(self, model: Any, faces: FloatArray) -> FloatArray:
        request = self._core.compile_model(model, "CPU", CONFIG).create_infer_request()
        chunks = [request.infer({0: faces[i : i + 100]})[0] for i in range(0, len(faces), 100)]
        return unit(np.concatenate([np.asarray(chunk, np.float32) for chunk in chunks]))

    def cosines(self, ranges: Ranges, rows: NDArray[np.intp] | None = None) -> FloatArray:
        rows = np.arange(len(self._faces)) if rows is None else rows
        vectors = self.embed(quantize(fp32_model(), ranges), self._faces[rows])
        return np.asarray((vectors * self.reference[rows]).sum(axis=1), np.float32)


def in_network_order(names: set[str]) -> list[str]:
    order = {node.get_friendly_name(): index for index, node in enumerate(fp32_model().get_ordered_ops())}
    return sorted(names, key=order.__getitem__)


def accurate_subset(ranges: Ranges, judge: Judge, lowest: float) -> Ranges:
    """The stem and the head in fp32, then operations put back to fp32, the most harmful first,
    until the lowest cosine is ``lowest``.

    The stem (the first STEM operations: the first convolution and the first blocks, where faces
    are still large images) and the head (the last HEAD: the last blocks, the embedding layer and
    its batch norm) lose the most in int8. With every operation in int8 the lowest cosine on the
    package photos' faces is 0.887; with the stem and head in fp32 it is 0.989 (docs/performance.md).
    Harm of each other operation is measured once, by putting it alone back to fp32 and looking at
    the 300 faces that fare worst (their lowest and mean cosine).
    """
    quantized = {name for entry in ranges.activations for name, _ in entry.consumers} | set(ranges.weights)
    ordered = in_network_order(quantized)
    units = set(ordered[STEM : len(ordered) - HEAD])
    worst = np.argsort(judge.cosines(restricted(ranges, units)))[:300]
    base = judge.cosines(restricted(ranges, units), worst)
    harm = {}
    for name in sorted(units):
        without = judge.cosines(restricted(ranges, units - {name}), worst)
        harm[name] = float(without.min() - base.min() + without.mean() - base.mean())
    for name in sorted(harm, key=lambda n: harm[n], reverse=True):
        cosines = judge.cosines(restricted(ranges, units))
        print(f"  {len(units)} operations in int8: lowest cosine {cosines.min():.4f}")
        if cosines.min() >= lowest:
            break
        units.discard(name)
    return restricted(ranges, units)


def ranges_of(quantized: Any) -> Ranges:
    """What NNCF quantized, as a ranges file: activation ranges, and the int8 convolutions."""
    activations, weights = [], []
    for node in quantized.get_ordered_ops():
        kind = node.get_type_name()
        weight_source = node.input(1).get_source_output().get_node() if kind.endswith("Convolution") else None
        # NNCF's int8 weights: a FakeQuantize, or already compressed (Convert and Multiply).
        if weight_source is not None and weight_source.get_type_name() in ("FakeQuantize", "Multiply"):
            weights.append(node.get_friendly_name())
        if kind != "FakeQuantize":
            continue
        source = node.input(0).get_source_output()
        if source.get_node().get_type_name() in ("Constant", "Reshape"):
            continue  # a weight: rebuilt from the weights themselves
        low, high, out_low, out_high = (
            np.asarray(node.input(i).get_source_output().get_node().get_data(), np.float32)
            for i in range(1, 5)
        )
        if node.get_attributes()["levels"] != 256 or not (
            np.array_equal(low, out_low) and np.array_equal(high, out_high)
        ):
            raise SystemExit(f"{node.get_friendly_name()}: not an 8-bit activation range")
        consumers = tuple(
            (target.get_node().get_friendly_name(), target.get_index())
            for target in node.output(0).get_target_inputs()
        )
        activations.append(
            ActivationRange(source.get_node().get_friendly_name(), source.get_index(), consumers, low, high)
        )
    network = f"{ARCFACE_MBF.resource} sha256 {ARCFACE_MBF.sha256}"
    return Ranges(network, tuple(activations), tuple(weights))


def report(ranges: Ranges, held_out: FloatArray | None) -> None:
    """Cosine of the rebuilt int8 network to fp32, and the time per face of each."""
    import openvino as ov

    test = face_blob()
    sets = {"package photos' faces and their mirror images": np.concatenate([test, test[:, :, :, ::-1]])}
    if held_out is not None:
        sets["CFP faces held out (people 301-500, as they are, mirrored, downscaled)"] = held_out
    for name, faces in sets.items():
        cosine = Judge(faces).cosines(ranges)
        print(f"{name}: {len(faces)}, cosine int8 vs fp32 min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    core = ov.Core()
    fp32, int8 = (
        core.compile_model(model, "CPU", CONFIG).create_infer_request()
        for model in (fp32_model(), quantize(fp32_model(), ranges))
    )
    batch = np.ascontiguousarray(test[:8])
    times = alternating_ms(
        {"fp32": lambda: fp32.infer({0: batch}), "int8": lambda: int8.infer({0: batch})}, runs=30
    )
    machine = platform.processor() or platform.machine()
    print(
        f"ms per face at batch 8 ({machine}): fp32 {times['fp32'] / 8:.2f}, "
        f"int8 {times['int8'] / 8:.2f}, {times['fp32'] / times['int8']:.2f}x"
    )


def breakdown(full: Ranges, committed: Ranges, judges: dict[str, Judge]) -> None:
    """Where int8 loses accuracy: the lowest cosine to fp32 with parts of the network in int8."""
    quantized = {name for entry in full.activations for name, _ in entry.consumers} | set(full.weights)
    ordered = in_network_order(quantized)
    parts = {
        "7-bit weights alone": Ranges(full.network, (), full.weights),
        "8-bit activations alone": Ranges(full.network, full.activations, ()),
        "everything in int8": full,
        f"first {STEM} and last {HEAD} operations in fp32": restricted(
            full, set(ordered[STEM : len(ordered) - HEAD])
        ),
        "the committed file": committed,
    }
    print(f"| int8 part | {' | '.join(judges)} |\n|---|{'---|' * len(judges)}")
    for name, ranges in parts.items():
        lowest = [f"{judge.cosines(ranges).min():.3f}" for judge in judges.values()]
        print(f"| {name} | {' | '.join(lowest)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--cfp", type=Path, default=DEFAULT_OUT, help="bench/cfp.py's output")
    parser.add_argument("--lowest", type=float, default=0.993, help="lowest cosine to fp32 on validation")
    parser.add_argument("--check", action="store_true", help="report on the committed ranges; no CFP needed")
    parser.add_argument("--out", type=Path, default=quantization_path(ARCFACE_MBF_INT8))
    parser.add_argument("--breakdown", action="store_true", help="where the loss is; writes nothing")
    args = parser.parse_args()
    if args.check:
        report(Ranges.parse(args.out.read_bytes()), None)
        return
    chosen = [photo for photo in photos(args.cfp, "frontal") if photo.number in PHOTOS]
    faces, people = aligned_faces(chosen)
    calibration = variants(faces[people <= CALIBRATION_PEOPLE], seed=0)
    validation = variants(faces[people > CALIBRATION_PEOPLE], seed=1)
    print(f"CFP: {len(faces)} faces of {len(chosen)} photos; {len(calibration)} calibrate, ", end="")
    print(f"{len(validation)} validate")
    if args.breakdown:
        test = face_blob()
        judges = {
            "package faces": Judge(np.concatenate([test, test[:, :, :, ::-1]])),
            "CFP validation": Judge(validation),
        }
        breakdown(ranges_of(statistics(calibration)), Ranges.parse(args.out.read_bytes()), judges)
        return
    start = time.perf_counter()
    ranges = accurate_subset(ranges_of(statistics(calibration)), Judge(validation), args.lowest)
    seconds = time.perf_counter() - start
    text = ranges.to_json(
        calibration=(
            f"CFP frontal photos {PHOTOS} of people 1-{CALIBRATION_PEOPLE} ({len(calibration)} faces with "
            f"mirrored and downscaled copies); layers back to fp32 until the lowest cosine to fp32 on "
            f"people {CALIBRATION_PEOPLE + 1}-500 is {args.lowest}; python -m bench.int8_calibrate"
        ),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(
        f"{args.out}: {len(ranges.activations)} activation ranges, {len(ranges.weights)} int8 convolutions "
        f"({seconds:.0f} s), sha256 {hashlib.sha256(text.encode()).hexdigest()}"
    )
    report(ranges, validation)


if __name__ == "__main__":
    main()
