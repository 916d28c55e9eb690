"""FACEREST_REDIS_URL: plain Redis or Sentinel, for redis-py clients and Celery's broker."""

from __future__ import annotations

import pytest

from shared.redisconn import SentinelTarget, celery_broker, parse_sentinel
from shared.settings import SettingsError, load_settings

SENTINEL_URL = "redis+sentinel://:s3cret@10.0.0.1:26380,sentinel-b,[::1]:26381/facerest/2"


def test_a_sentinel_url_names_every_sentinel_the_service_the_db_and_the_password() -> None:
    assert parse_sentinel(SENTINEL_URL) == SentinelTarget(
        sentinels=(("10.0.0.1", 26380), ("sentinel-b", 26379), ("::1", 26381)),
        service="facerest",
        db=2,
        password="s3cret",
    )
    assert parse_sentinel("redis+sentinel://h:1/primary").db == 0


def test_celery_gets_one_sentinel_url_per_sentinel_and_the_service_as_master_name() -> None:
    broker, options = celery_broker(SENTINEL_URL)
    assert broker.split(";") == [
        "sentinel://:s3cret@10.0.0.1:26380/2",
        "sentinel://:s3cret@sentinel-b:26379/2",
        "sentinel://:s3cret@[::1]:26381/2",
    ]
    assert options == {"master_name": "facerest"}
    assert celery_broker("redis://127.0.0.1:6379/0") == ("redis://127.0.0.1:6379/0", {})


@pytest.mark.parametrize(
    "url", ["redis+sentinel://h:1", "redis+sentinel://h:1/a/b", "redis+sentinel://,h:1/a", "http://h/0"]
)
def test_a_bad_redis_url_fails_at_start_naming_the_setting(url: str) -> None:
    with pytest.raises(SettingsError, match="FACEREST_REDIS_URL"):
        load_settings(redis_url=url)


def test_settings_know_when_writes_must_wait_for_a_replica() -> None:
    assert load_settings(redis_url=SENTINEL_URL).replicated
    assert not load_settings(redis_url="redis://127.0.0.1:6379/0").replicated
