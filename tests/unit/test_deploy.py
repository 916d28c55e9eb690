"""The HAProxy template, its two renders, and compose.yaml agree with each other and with haproxy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from api import gunicorn_conf
from deploy.haproxy import (
    COMPOSE_API_PORT,
    COMPOSE_CONFIG,
    ProxyOptions,
    TemplateError,
    fill,
    render_cluster,
    render_compose,
)
from deploy.haproxy import main as haproxy_main
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def haproxy_check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False)


@pytest.fixture
def compose_config(tmp_path: Path) -> Path:
    """The compose config as deploy.sh renders it."""
    config = tmp_path / "compose" / "haproxy.cfg"
    assert haproxy_main(["compose", "--output", str(config)]) == 0
    return config


def test_the_compose_config_is_the_render_of_the_template(compose_config: Path) -> None:
    assert compose_config.read_text() == render_compose()


def test_deploy_sh_renders_the_config_compose_mounts_before_starting() -> None:
    script = (ROOT / "deploy.sh").read_text()
    render = f"-m deploy.haproxy compose --output {COMPOSE_CONFIG.relative_to(ROOT)}"
    assert render in script
    assert script.index(render) < script.index("compose up")


def test_haproxy_accepts_the_compose_config(compose_config: Path) -> None:
    result = haproxy_check(compose_config)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_accepts_the_cluster_config(tmp_path: Path) -> None:
    options = ProxyOptions.from_settings(Settings.model_construct(), "127.0.0.1:18081", "127.0.0.1:8404", 250)
    config = tmp_path / "haproxy.cfg"
    config.write_text(render_cluster(options, [18091, 18092, 18093]))
    result = haproxy_check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    text = config.read_text()
    # Every replica is in both backends: ready (/ready) and live (/health) as fallback.
    assert text.count("server api3 127.0.0.1:18093 check") == 2
    assert "inter 250 " in text
    assert f"gt {Settings.model_construct().max_body_bytes} }}" in text


def test_fill_refuses_missing_and_unused_values() -> None:
    with pytest.raises(TemplateError, match="no value"):
        fill("a {{x}} {{y}}", {"x": "1"})
    with pytest.raises(TemplateError, match="no place"):
        fill("a {{x}}", {"x": "1", "z": "2"})
    assert fill("a {{x}}", {"x": "1"}) == "a 1"


def test_compose_matches_the_rendered_haproxy_config() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"redis", "api", "haproxy", "worker-cpu", "flower"} <= services.keys()
    mount = f"./{COMPOSE_CONFIG.relative_to(ROOT)}:/usr/local/etc/haproxy/haproxy.cfg:ro"
    assert mount in services["haproxy"]["volumes"]
    assert "18081:18081" in services["haproxy"]["ports"]
    assert services["api"]["expose"] == [str(COMPOSE_API_PORT)]
    assert gunicorn_conf.bind == f"0.0.0.0:{COMPOSE_API_PORT}"
    assert "--appendonly" in services["redis"]["command"]
