"""Builds the FaceAnalyzer for a device: locate and verify each model file, open its session."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from shared.settings import Backend, ModelSelection, Settings, SettingsError
from worker.inference.registry import (
    AGE_V1,
    ARCFACE_MBF,
    DLIB_RESNET,
    GENDER_V1,
    LANDMARKS_2D106,
    MTCNN_NETS,
    RETINAFACE_MNET,
    SCRFD_500M,
    ModelSpec,
    locate,
    locate_all,
    read_model,
)
from worker.inference.session import Device, create_session, resolve_backend, torch_device
from worker.models.arcface import ArcFace
from worker.models.base import Detector, GenderAgeModel, LandmarkModel, Recognizer
from worker.models.genderage import DlibGenderAge
from worker.models.landmarks import Landmarks106
from worker.models.retinaface import RetinaFace
from worker.models.scrfd import SCRFD
from worker.pipeline import AttributeModels, BatchLimits, FaceAnalyzer

DETECTOR_SPECS: Mapping[str, ModelSpec] = MappingProxyType(
    {"scrfd": SCRFD_500M, "retinaface": RETINAFACE_MNET, "mtcnn": MTCNN_NETS}
)
RECOGNIZER_SPECS: Mapping[str, ModelSpec] = MappingProxyType({"arcface": ARCFACE_MBF, "dlib": DLIB_RESNET})
ATTRIBUTE_SPECS: Mapping[str, tuple[ModelSpec, ...]] = MappingProxyType(
    {"genderage": (GENDER_V1, AGE_V1), "landmarks106": (LANDMARKS_2D106,)}
)


def selected_specs(selection: ModelSelection) -> list[ModelSpec]:
    specs = [DETECTOR_SPECS[name] for name in selection.detectors]
    specs.append(RECOGNIZER_SPECS[selection.recognizer])
    for name in selection.attributes:
        specs.extend(ATTRIBUTE_SPECS[name])
    return specs


def check_profile(settings: Settings, selection: ModelSelection) -> None:
    """The permissive profile refuses, at start, any model whose license forbids commercial use."""
    if settings.profile != "permissive":
        return
    refused = [
        f"{spec.key} ({spec.license})" for spec in selected_specs(selection) if not spec.commercial_use
    ]
    if refused:
        raise SettingsError(
            "invalid settings: FACEREST_PROFILE=permissive loads only models licensed for commercial "
            f"use, but these are not: {', '.join(refused)}"
        )


def _detector(name: str, device: Device, threads: int, backend: Backend) -> Detector:
    if name == "scrfd":
        model = locate(SCRFD_500M) if backend is Backend.OPENVINO else read_model(SCRFD_500M)
        return SCRFD(create_session(model, device, threads, backend), SCRFD_500M)
    if name == "retinaface":
        return RetinaFace(create_session(read_model(RETINAFACE_MNET), device, threads), RETINAFACE_MNET)
    try:
        from worker.models.mtcnn import MTCNN
    except ImportError as exc:
        raise SettingsError(
            f"detector mtcnn needs PyTorch and facenet-pytorch (the 'mtcnn' extra): {exc}"
        ) from exc
    return MTCNN(locate_all(MTCNN_NETS), MTCNN_NETS, torch_device(device), threads)


def _recognizer(name: str, device: Device, threads: int, backend: Backend) -> Recognizer:
    if name == "arcface":
        model = locate(ARCFACE_MBF) if backend is Backend.OPENVINO else read_model(ARCFACE_MBF)
        return ArcFace(create_session(model, device, threads, backend), ARCFACE_MBF)
    from worker.models.dlib_descriptor import DlibDescriptor

    return DlibDescriptor(locate(DLIB_RESNET), DLIB_RESNET)


def _attributes(names: tuple[str, ...], device: Device, threads: int) -> AttributeModels:
    landmarks: LandmarkModel | None = None
    genderage: GenderAgeModel | None = None
    if "landmarks106" in names:
        landmarks = Landmarks106(
            create_session(read_model(LANDMARKS_2D106), device, threads), LANDMARKS_2D106
        )
    if "genderage" in names:
        genderage = DlibGenderAge(
            create_session(read_model(GENDER_V1), device, threads),
            GENDER_V1,
            create_session(read_model(AGE_V1), device, threads),
            AGE_V1,
        )
    return AttributeModels(landmarks=landmarks, genderage=genderage)


# Faces per recognizer call by default (bench/batching.py). On a CPU, ArcFace costs the same per
# face from batch 2 up, while each batch's activations stay resident: batch 32 held 350 MB more
# than batch 8. On a GPU, batch 32 costs half as much per face as batch 8.
CPU_BATCH_MAX_FACES = 8
GPU_BATCH_MAX_FACES = 32


def default_batch_max_faces(device: Device) -> int:
    return CPU_BATCH_MAX_FACES if device.kind == "cpu" else GPU_BATCH_MAX_FACES


def load_analyzer(settings: Settings, device: Device) -> FaceAnalyzer:
    selection = settings.models()
    check_profile(settings, selection)
    threads = settings.intra_op_threads
    # Measured on a 2-core AVX-512 CPU (bench/runtimes.py): OpenVINO runs ArcFace about twice as
    # fast as ONNX Runtime with identical embeddings; ONNX Runtime runs SCRFD faster.
    detector_backend = resolve_backend(settings.detector_backend, device, Backend.ONNXRUNTIME)
    recognizer_backend = resolve_backend(settings.recognizer_backend, device, Backend.OPENVINO)
    detectors: dict[str, Detector] = {
        name: _detector(name, device, threads, detector_backend) for name in selection.detectors
    }
    limits = BatchLimits(
        max_images=settings.batch_max_images,
        max_faces=settings.batch_max_faces or default_batch_max_faces(device),
        max_wait_s=settings.batch_wait_ms / 1000,
        static_shapes=device.kind == "cuda",
    )
    return FaceAnalyzer(
        detectors,
        _recognizer(selection.recognizer, device, threads, recognizer_backend),
        settings.max_image_pixels,
        _attributes(selection.attributes, device, threads),
        limits,
    )


def loaded_models(analyzer: FaceAnalyzer) -> list[ModelSpec]:
    specs = [detector.spec for detector in analyzer.detectors.values()]
    specs.append(analyzer.recognizer.spec)
    if analyzer.attributes.landmarks is not None:
        specs.append(analyzer.attributes.landmarks.spec)
    if analyzer.attributes.genderage is not None:
        specs.extend(analyzer.attributes.genderage.specs)
    return specs
