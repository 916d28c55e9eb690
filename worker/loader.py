"""Builds the FaceAnalyzer for a device: the registry's selected models, opened and batched."""

from __future__ import annotations

from shared.images import configure_pillow
from shared.settings import CPU_BATCH_MAX_FACES, GPU_BATCH_MAX_FACES, Settings
from worker.analyzer import FaceAnalyzer
from worker.batched import BatchedModels, BatchLimits
from worker.inference.registry import select
from worker.inference.session import Device
from worker.models.base import LoadedModels


def default_batch_max_faces(device: Device) -> int:
    return CPU_BATCH_MAX_FACES if device.kind == "cpu" else GPU_BATCH_MAX_FACES


def load_models(settings: Settings, device: Device) -> LoadedModels:
    """Open the models the settings name (SettingsError for a bad name or license)."""
    selected = select(settings)
    return LoadedModels(
        detectors={entry.key: entry.open(settings, device) for entry in selected.detectors},
        recognizer=selected.recognizer.open(settings, device),
        genderage=None if selected.genderage is None else selected.genderage.open(settings, device),
        landmarks106=None if selected.landmarks106 is None else selected.landmarks106.open(settings, device),
    )


def batch_limits(settings: Settings, device: Device) -> BatchLimits:
    return BatchLimits(
        max_images=settings.batch_max_images,
        max_faces=settings.batch_max_faces or default_batch_max_faces(device),
        max_wait_s=settings.batch_wait_ms / 1000,
        static_shapes=device.kind == "cuda",
        max_detect_pixels=settings.max_detect_pixels,
    )


def load_analyzer(settings: Settings, device: Device) -> FaceAnalyzer:
    configure_pillow(settings.max_image_pixels)  # the one process-global write, at start
    models = BatchedModels(load_models(settings, device), batch_limits(settings, device))
    return FaceAnalyzer(models, settings.max_image_pixels, flip=settings.flip)
