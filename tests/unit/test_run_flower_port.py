"""``make run`` tells the API where Flower listens (FLOWER_PORT), so that the web page's Flower
link, which reads /info's flower_port, points at it; the processes are not started here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import deploy.run
from deploy.launcher import Stack
from shared.settings import load_settings


def test_make_run_passes_flower_port_to_the_api(monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: dict[str, dict[str, str]] = {}
    args: dict[str, list[str]] = {}

    def spawn(self: Stack, role: str, argv: list[str], **options: Any) -> None:
        spawned[role] = {**self.env, **(options.get("extra_env") or {})}
        args[role] = argv

    def serve(system: Stack, start: Callable[[], None], supervise: bool = False) -> int:
        start()
        return 0

    monkeypatch.setattr(Stack, "spawn", spawn)
    monkeypatch.setattr(deploy.run, "serve", serve)
    monkeypatch.setattr(deploy.run, "redis_answers", lambda url: True)
    monkeypatch.setenv("FACEREST_FLOWER_AUTH", "admin:test-password")  # no password file written
    monkeypatch.setenv("FLOWER_PORT", "5601")
    monkeypatch.delenv("FACEREST_FLOWER_PORT", raising=False)
    assert deploy.run.main() == 0
    assert "--port=5601" in args["flower"]
    assert spawned["api"]["FACEREST_FLOWER_PORT"] == "5601"
    # The API reads it as its setting (what /info answers as flower_port).
    monkeypatch.setenv("FACEREST_FLOWER_PORT", spawned["api"]["FACEREST_FLOWER_PORT"])
    assert load_settings().flower_port == 5601
