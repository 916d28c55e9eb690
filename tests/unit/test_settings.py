from __future__ import annotations

import pytest

from shared.settings import SettingsError, load_settings


def test_defaults_are_safe() -> None:
    settings = load_settings()
    assert settings.device == "cpu"
    assert settings.max_images == 64
    assert settings.result_ttl_s == 3600


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREST_DEVICE", "cuda:1")
    monkeypatch.setenv("FACEREST_MAX_IMAGES", "8")
    settings = load_settings()
    assert settings.device == "cuda:1" and settings.max_images == 8


@pytest.mark.parametrize(
    ("variable", "value", "mentions"),
    [
        ("FACEREST_DEVICE", "gpu0", "FACEREST_DEVICE"),
        ("FACEREST_MAX_IMAGES", "0", "FACEREST_MAX_IMAGES"),
        ("FACEREST_SYNC_TIMEOUT_S", "soon", "FACEREST_SYNC_TIMEOUT_S"),
        ("FACEREST_REDIS_URL", "http://localhost", "FACEREST_REDIS_URL"),
    ],
)
def test_bad_values_fail_at_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, mentions: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=mentions):
        load_settings()
