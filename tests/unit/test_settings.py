from __future__ import annotations

import pytest

from deploy.envfile import EXAMPLE
from shared.settings import Settings, SettingsError, load_settings


def test_defaults_pass_their_own_validation_and_fit_together() -> None:
    # pydantic does not validate defaults: give each one back as if it had been set.
    defaults = load_settings()
    for name in Settings.model_fields:
        value = getattr(defaults, name)
        if value is not None:
            assert getattr(load_settings(**{name: value}), name) == value, name
    # A synchronous answer is read before its result expires, and a job the API still waits
    # for is not delivered to a second worker.
    assert defaults.result_ttl_s > defaults.sync_timeout_s
    assert defaults.visibility_timeout_s > defaults.sync_timeout_s
    # One image of the largest size fits in a request body.
    assert defaults.max_image_bytes < defaults.max_body_bytes
    # Without any variable a worker starts on a machine without a GPU.
    assert defaults.device == "cpu"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEREST_DEVICE", "cuda:1")
    monkeypatch.setenv("FACEREST_MAX_IMAGES", "8")
    settings = load_settings()
    assert settings.device == "cuda:1" and settings.max_images == 8


def test_every_line_of_the_env_example_uncommented_as_it_stands_is_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # docker/facerest.env.example shows each default on a commented line; uncommenting one must
    # not change anything (an empty FACEREST_API_KEYS_FILE= once read as the directory ".").
    defaults = load_settings()
    for line in EXAMPLE.read_text().splitlines():
        if line.startswith("# FACEREST_") and "=" in line:
            name, _, value = line.removeprefix("# ").partition("=")
            monkeypatch.setenv(name, value.split("   ")[0].strip())
    settings = load_settings()
    assert settings.api_keys_file is None and settings.load_api_keys() == ()
    # The profile's models, named instead of derived: the same lists.
    named = {"detectors", "recognizer", "attributes"}
    assert settings.model_dump(exclude=named) == defaults.model_dump(exclude=named)


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


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    from shared.settings import unknown_settings

    lines = unknown_settings(
        {
            "FACEREST_DEVICE": "cpu",  # known
            "facerest_max_images": "3",  # known (names are not case-sensitive)
            "FACEREST_ENV_FILE": "x",  # compose's, not a setting
            "FACEREST_REDIS_ULR": "redis://x",
            "FACEREST_DET_MAX_SIZE": "640",
            "FACEREST_QQQQQQQ": "1",
            "PATH": "/bin",
        }
    )
    assert lines == [
        "unknown setting FACEREST_DET_MAX_SIZE (ignored); did you mean FACEREST_BATCH_MAX_IMAGES?",
        "unknown setting FACEREST_QQQQQQQ (ignored); no setting has a similar name",
        "unknown setting FACEREST_REDIS_ULR (ignored); did you mean FACEREST_REDIS_URL?",
    ]


def test_cors_origins_are_checked() -> None:
    settings = load_settings(cors_origins="https://a.example, http://b.example:8080/")
    assert settings.cors_origin_list == ("https://a.example", "http://b.example:8080")
    assert load_settings().cors_origin_list == ()
    with pytest.raises(SettingsError, match="FACEREST_CORS_ORIGINS"):
        load_settings(cors_origins="*")
