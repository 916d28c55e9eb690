"""API-key checks and key settings, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask, g

from api.auth import PROTOCOL_KEY, ApiKeys, presented_key, request_key, request_owner
from shared.errors import InvalidApiKey, MissingApiKey
from shared.settings import SettingsError, load_settings


def test_keys_are_checked_against_all_configured_keys() -> None:
    keys = ApiKeys(["alpha", "beta"])
    keys.check("alpha")
    keys.check("beta")
    with pytest.raises(InvalidApiKey):
        keys.check("alph")
    with pytest.raises(InvalidApiKey):
        keys.check("alphaa")
    with pytest.raises(MissingApiKey):
        keys.check(None)
    with pytest.raises(MissingApiKey):
        keys.check("")


def test_a_collection_list_limits_a_key_and_star_or_none_means_every_collection() -> None:
    keys = ApiKeys(["limited staff guests", "everything *", "bare"])
    assert keys.may_use("limited", "staff") and keys.may_use("limited", "guests")
    assert not keys.may_use("limited", "other")
    assert keys.may_use("everything", "other") and keys.may_use("bare", "other")
    keys.check("everything")  # "*" is no part of the key
    with pytest.raises(InvalidApiKey):
        keys.check("everything *")
    assert keys.unlimited_bare == 1  # the notice at start counts only the keys without a list
    assert ApiKeys(["a *", "b c"]).unlimited_bare == 0


def test_star_beside_collection_names_fails_at_start_without_the_key() -> None:
    with pytest.raises(SettingsError, match="names no collections beside it") as refused:
        ApiKeys(["secret-key * staff"])
    assert "secret-key" not in str(refused.value)


def test_keys_from_setting_and_file(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# comment\nfile-key\n\n  spaced-key  \n")
    settings = load_settings(api_keys="a, b", api_keys_file=keys_file)
    assert settings.load_api_keys() == ("a", "b", "file-key", "spaced-key")
    assert "a, b" not in repr(settings)
    assert load_settings().load_api_keys() == ()


def test_bad_key_files_fail_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FACEREST_API_KEYS_FILE"):
        load_settings(api_keys_file=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("# no keys\n")
    with pytest.raises(SettingsError, match="holds no key"):
        load_settings(api_keys_file=empty).load_api_keys()


def test_url_allow_list_is_validated() -> None:
    assert load_settings(url_allow="10.0.0.0/8, images.internal").url_allow_list == (
        "10.0.0.0/8",
        "images.internal",
    )
    with pytest.raises(SettingsError, match="FACEREST_URL_ALLOW"):
        load_settings(url_allow="10.0.0.0/8, not a host!")


def test_presented_key_header_forms() -> None:
    assert presented_key("k", None) == "k"
    assert presented_key(None, "Bearer t0k") == "t0k"
    assert presented_key(None, "bearer t0k") == "t0k"
    assert presented_key(None, "Basic abc") is None
    assert presented_key(None, None) is None


def test_a_request_presents_its_key_in_either_header_and_owns_its_jobs_by_it() -> None:
    app = Flask("auth-test")
    keys = ApiKeys(["k", "t0k"])
    with app.test_request_context(headers={"Authorization": "Bearer t0k"}):
        assert request_key() == "t0k"
        assert request_owner(keys) == keys.scope("t0k") != ""
    with app.test_request_context(headers={"X-API-Key": "k", "Authorization": "Bearer t0k"}):
        assert request_key() == "k"
    with app.test_request_context():
        assert request_key() is None
        assert request_owner(keys) == ""
    with app.test_request_context(headers={"X-API-Key": "k"}):
        assert request_owner(ApiKeys([])) == ""  # keys off: one shared scope


def test_a_protocol_key_counts_only_without_a_header_key() -> None:
    app = Flask("auth-test")
    with app.test_request_context():
        g.setdefault(PROTOCOL_KEY, "form-key")
        assert request_key() == "form-key"
    with app.test_request_context(headers={"X-API-Key": "k"}):
        g.setdefault(PROTOCOL_KEY, "form-key")
        assert request_key() == "k"


def test_home_collection_is_a_keys_first_collection_else_the_default() -> None:
    keys = ApiKeys(["limited staff guests", "every *", "bare"])
    assert keys.home_collection("limited", "default") == "staff"
    assert keys.home_collection("every", "default") == "default"
    assert keys.home_collection("bare", "default") == "default"
    assert ApiKeys([]).home_collection("anything", "default") == "default"
