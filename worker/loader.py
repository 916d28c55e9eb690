"""Builds the FaceAnalyzer for a device: locate and verify each model file, open its session."""

from __future__ import annotations

from shared.settings import Backend, Settings
from worker.inference.registry import ARCFACE_MBF, SCRFD_500M, ModelSpec, locate
from worker.inference.session import Device, create_session, resolve_backend
from worker.models.arcface import ArcFace
from worker.models.scrfd import SCRFD
from worker.pipeline import BatchLimits, FaceAnalyzer


def load_analyzer(settings: Settings, device: Device) -> FaceAnalyzer:
    threads = settings.intra_op_threads
    # Measured on a 2-core AVX-512 CPU (bench/runtimes.py): OpenVINO runs ArcFace about twice as
    # fast as ONNX Runtime with identical embeddings; ONNX Runtime runs SCRFD faster.
    detector_backend = resolve_backend(settings.detector_backend, device, Backend.ONNXRUNTIME)
    recognizer_backend = resolve_backend(settings.recognizer_backend, device, Backend.OPENVINO)
    detector = SCRFD(create_session(locate(SCRFD_500M), device, threads, detector_backend), SCRFD_500M)
    recognizer = ArcFace(
        create_session(locate(ARCFACE_MBF), device, threads, recognizer_backend), ARCFACE_MBF
    )
    limits = BatchLimits(
        max_images=settings.batch_max_images,
        max_faces=settings.batch_max_faces,
        max_wait_s=settings.batch_wait_ms / 1000,
        static_shapes=device.kind == "cuda",
    )
    return FaceAnalyzer(detector, recognizer, settings.max_image_pixels, limits)


def loaded_models(analyzer: FaceAnalyzer) -> list[ModelSpec]:
    return [analyzer.detector.spec, analyzer.recognizer.spec]
