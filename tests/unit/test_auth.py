"""API-key checks and key settings, without a server."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from flask import Flask, g

from api.auth import PROTOCOL_KEY, ApiKeys, client_address, presented_key, request_key, request_owner
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


LOOPBACK = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # No trusted proxy in between: the peer, whatever the header says.
        ("192.0.2.7", ["203.0.113.9"], "192.0.2.7"),
        # Through one trusted proxy: the hop it appended.
        ("127.0.0.1", ["192.0.2.7"], "192.0.2.7"),
        # A forged hop left of the real one is never read.
        ("127.0.0.1", ["203.0.113.9", "192.0.2.7"], "192.0.2.7"),
        # Two trusted proxies: the nearest untrusted hop.
        ("127.0.0.1", ["192.0.2.7", "10.1.2.3"], "192.0.2.7"),
        # Only trusted hops: the farthest of them.
        ("127.0.0.1", ["10.1.2.3"], "10.1.2.3"),
        # No header: the proxy's own address.
        ("127.0.0.1", [], "127.0.0.1"),
        # A hop that is no address ends the walk at the proxy that sent it.
        ("127.0.0.1", ["192.0.2.7", "unknown"], "127.0.0.1"),
        ("127.0.0.1", ["2001:db8::1"], "2001:db8::1"),
        # A peer that is no IP address (a unix socket) is kept as it is.
        ("", ["192.0.2.7"], ""),
    ],
)
def test_client_address_believes_forwarded_hops_from_trusted_proxies_only(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert client_address(peer, forwarded, LOOPBACK) == client


def test_client_address_without_trusted_proxies_is_the_peer() -> None:
    assert client_address("127.0.0.1", ["192.0.2.7"], []) == "127.0.0.1"


def test_trusted_proxies_must_be_networks() -> None:
    assert [str(n) for n in load_settings(trusted_proxies="127.0.0.1, 10.0.0.0/8").trusted_networks] == [
        "127.0.0.1/32",
        "10.0.0.0/8",
    ]
    with pytest.raises(SettingsError, match="haproxy"):
        load_settings(trusted_proxies="haproxy")
