"""Webhook signing, per-key secrets, backoff and one delivery attempt against a real local
receiver (shared/webhooks.py); key entries with a default callback (api/auth.py); the settings."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from api.auth import ApiKeys
from deploy.launcher import free_port
from shared.fetch import UrlPolicy
from shared.settings import SettingsError, load_settings
from shared.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryFailed,
    key_secret,
    post,
    retry_delay,
    signed_headers,
)
from tests.localserver import LocalServer

SECRET = "service-secret-for-tests"
LOOPBACK = UrlPolicy(["127.0.0.1/32"], setting="FACEREST_WEBHOOK_ALLOW")


def receiver_accepts(
    secret: str, headers: dict[str, str], body: bytes, now: float, tolerance_s: int = 300
) -> bool:
    """What docs/webhooks.md tells a receiver to do, written from the description alone."""
    timestamp = headers[TIMESTAMP_HEADER.lower()]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    sent = headers[SIGNATURE_HEADER.lower()].removeprefix("sha256=")
    return hmac.compare_digest(expected, sent) and abs(now - int(timestamp)) <= tolerance_s


def lowered(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def test_a_signed_body_verifies_and_a_changed_body_or_timestamp_does_not() -> None:
    body = b'{"id": "abc", "status": "done"}'
    headers = lowered(signed_headers(SECRET, "abc", body, now=1_700_000_000))
    assert headers["x-facerest-timestamp"] == "1700000000"
    assert headers["x-facerest-job"] == "abc"
    assert receiver_accepts(SECRET, headers, body, now=1_700_000_010)
    assert not receiver_accepts(SECRET, headers, body + b" ", now=1_700_000_010)
    assert not receiver_accepts("another secret", headers, body, now=1_700_000_010)
    replayed = headers | {"x-facerest-timestamp": "1700000001"}  # a new timestamp on the old signature
    assert not receiver_accepts(SECRET, replayed, body, now=1_700_000_010)
    assert not receiver_accepts(SECRET, headers, body, now=1_700_000_000 + 301), "too old: a replay"


def test_each_key_signs_with_its_own_secret_and_keys_off_with_the_service_secret() -> None:
    owner_a, owner_b = hashlib.sha256(b"key-a").hexdigest(), hashlib.sha256(b"key-b").hexdigest()
    assert key_secret(SECRET, "") == SECRET
    secret_a, secret_b = key_secret(SECRET, owner_a), key_secret(SECRET, owner_b)
    assert len({secret_a, secret_b, SECRET}) == 3
    assert key_secret(SECRET, owner_a) == secret_a, "derived, so every process derives the same"
    assert key_secret("rotated", owner_a) != secret_a


def test_retries_double_from_the_first_delay_up_to_the_cap() -> None:
    assert [retry_delay(n, 2.0, 30.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert retry_delay(10_000, 2.0, 300.0) == 300.0


def test_a_delivery_posts_the_body_with_its_headers_and_returns_the_receivers_status() -> None:
    body = b'{"id": "j1"}'
    with LocalServer(post_status=204) as receiver:
        status = post(LOOPBACK, receiver.url("/hook?x=1"), body, signed_headers(SECRET, "j1", body), 5.0)
    assert status == 204
    (got,) = receiver.posts
    assert (got.path, got.body, got.headers["content-type"]) == ("/hook?x=1", body, "application/json")
    assert receiver_accepts(SECRET, got.headers, body, time.time())


def test_a_receiver_error_or_a_closed_port_is_retried_and_a_refused_address_is_final() -> None:
    with LocalServer(post_status=503) as receiver:
        with pytest.raises(DeliveryFailed) as answered:
            post(LOOPBACK, receiver.url("/"), b"{}", {}, 5.0)
        strict = UrlPolicy(setting="FACEREST_WEBHOOK_ALLOW")
        with pytest.raises(DeliveryFailed) as refused:
            post(strict, receiver.url("/"), b"{}", {}, 5.0)
        assert len(receiver.posts) == 1, "the refused delivery never reached the receiver"
    assert (answered.value.reason, answered.value.final) == ("the receiver answered HTTP 503", False)
    assert refused.value.final
    assert refused.value.reason == (
        "refused address: 127.0.0.1 is or resolves to a loopback address (not in FACEREST_WEBHOOK_ALLOW)"
    )
    with pytest.raises(DeliveryFailed) as closed:
        post(LOOPBACK, f"http://127.0.0.1:{free_port()}/", b"{}", {}, 5.0)
    assert not closed.value.final
    assert closed.value.reason.startswith("cannot connect to the receiver")


def test_a_redirect_is_a_failed_attempt_not_followed() -> None:
    with LocalServer(post_status=307) as receiver, pytest.raises(DeliveryFailed, match="HTTP 307"):
        post(LOOPBACK, receiver.url("/"), b"{}", {}, 5.0)


def test_a_key_entry_may_name_a_default_callback_beside_its_collections() -> None:
    keys = ApiKeys(
        ["k1 staff callback=https://hooks.example/a", "k2 * callback=https://hooks.example/b", "k3"]
    )
    assert keys.default_callback("k1") == "https://hooks.example/a"
    assert keys.default_callback("k2") == "https://hooks.example/b"
    assert keys.default_callback("k3") == ""
    assert keys.may_use("k1", "staff") and not keys.may_use("k1", "callback=https://hooks.example/a")
    assert keys.may_use("k2", "anything")
    assert sorted(keys.callbacks) == ["https://hooks.example/a", "https://hooks.example/b"]
    with pytest.raises(SettingsError, match="more than once"):
        ApiKeys(["k1 callback=https://a.example callback=https://b.example"])


def test_webhook_settings_fail_fast() -> None:
    with pytest.raises(SettingsError) as short_ttl:
        load_settings(webhook_secret="s", webhook_retry_for_s=3600, result_ttl_s=3600)
    assert str(short_ttl.value) == (
        "invalid settings: FACEREST_WEBHOOK_RETRY_FOR_S (3600.0) must be below FACEREST_RESULT_TTL_S (3600): "
        "a job's result is gone after it"
    )
    assert load_settings(result_ttl_s=600).result_ttl_s == 600, "webhooks off: a short TTL alone is fine"
    with pytest.raises(SettingsError, match="needs FACEREST_WEBHOOK_SECRET"):
        load_settings(webhook_url="https://hooks.example/")
    with pytest.raises(SettingsError, match="FACEREST_WEBHOOK_ALLOW"):
        load_settings(webhook_allow="not a network!")
    assert load_settings(webhook_allow="10.0.0.0/8,hooks.internal").webhook_allow_list == (
        "10.0.0.0/8",
        "hooks.internal",
    )
