"""Render docker/haproxy.cfg.template for compose or for the loopback cluster.

``deploy.sh`` renders the compose config before ``docker compose up`` from the settings file the
containers get (``python -m deploy.haproxy compose --env-file facerest.env --output
var/compose/haproxy.cfg``, the file compose.yaml mounts); ``deploy.cluster`` renders its own
with the replicas' loopback ports, from the settings its API replicas get (the environment).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from shared.settings import Settings, SettingsError, describe_problems, load_settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "docker" / "haproxy.cfg.template"
# Rendered at deploy time, never committed: compose.yaml mounts it from here.
COMPOSE_CONFIG = ROOT / "var" / "compose" / "haproxy.cfg"
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")

# The API listens on this port inside its container (compose.yaml, docker/Dockerfile).
COMPOSE_API_PORT = 18080
# Slots HAProxy keeps for API replicas found through DNS; unused slots stay in maintenance.
COMPOSE_API_SLOTS = 16
# The container's own resolver, whichever the engine gives it: Docker's 127.0.0.11, or podman's
# aardvark-dns on the network's gateway address.
DOCKER_RESOLVERS = """
resolvers docker
    parse-resolv-conf
    accepted_payload_size 8192
    hold valid 5s
    hold other 5s
    hold nx 5s
"""


# A path inside the API container (a mounted secret), which need not exist where deploy.sh runs.
CONTAINER_ONLY = frozenset({"api_keys_file"})


class TemplateError(ValueError):
    """The template and the values given for it do not match."""


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """What differs between deployments; everything else is in the template."""

    bind: str
    stats_bind: str
    max_body_bytes: int
    server_timeout_s: int
    max_video_bytes: int = 256 * 1024 * 1024  # POST /videos' body (with room for its form)
    check_inter_ms: int = 2000
    maxconn: int = 2000
    bufsize: int = 256 * 1024

    @classmethod
    def from_settings(
        cls, settings: Settings, bind: str, stats_bind: str, check_inter_ms: int = 2000
    ) -> ProxyOptions:
        return cls(
            bind=bind,
            stats_bind=stats_bind,
            max_body_bytes=settings.max_body_bytes,
            max_video_bytes=settings.max_video_bytes + (1 << 20),
            # The API gives up on a synchronous job after sync_timeout_s and answers 504 itself.
            server_timeout_s=int(settings.sync_timeout_s) + 15,
            check_inter_ms=check_inter_ms,
        )


class _FileOnlySettings(Settings):
    """Settings from the values given, never from this shell's environment."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def settings_from_env_file(path: Path) -> Settings:
    """The settings compose gives the containers from ``path`` (their ``env_file``).

    Only the file counts, as in the containers: a FACEREST_* variable of the shell that runs
    deploy.sh would not reach them, so it must not change HAProxy's limits either. Every value is
    validated, so a bad one stops the deploy before any container starts.
    """
    if not path.is_file():
        raise SettingsError(f"{path}: no such settings file (docker/facerest.env.example is one)")
    values: dict[str, object] = {}
    for key, value in dotenv_values(path).items():
        name = key.upper().removeprefix("FACEREST_").lower()
        if key.upper().startswith("FACEREST_") and value is not None and name not in CONTAINER_ONLY:
            values[name] = value
    try:
        return _FileOnlySettings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(f"{path}: invalid settings: {describe_problems(exc)}") from exc


def fill(template: str, values: dict[str, str]) -> str:
    """Replace each ``{{name}}``; a placeholder without a value, or a value without a place, fails."""
    used = set(PLACEHOLDER.findall(template))
    if missing := used - values.keys():
        raise TemplateError(f"no value for {sorted(missing)}")
    if unused := values.keys() - used:
        raise TemplateError(f"template has no place for {sorted(unused)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def render(options: ProxyOptions, servers: str, resolvers: str = "", template: str | None = None) -> str:
    text = TEMPLATE.read_text() if template is None else template
    values = {
        "bind": options.bind,
        "stats_bind": options.stats_bind,
        "max_body_bytes": str(options.max_body_bytes),
        "max_video_bytes": str(options.max_video_bytes),
        "server_timeout_s": str(options.server_timeout_s),
        "check_inter_ms": str(options.check_inter_ms),
        "check_fastinter_ms": str(max(100, options.check_inter_ms // 4)),
        "maxconn": str(options.maxconn),
        "bufsize": str(options.bufsize),
        "servers": servers,
        "resolvers": resolvers,
    }
    return fill(text, values)


def loopback_servers(ports: Sequence[int]) -> str:
    return "\n".join(f"    server api{i + 1} 127.0.0.1:{port} check" for i, port in enumerate(ports))


def render_cluster(options: ProxyOptions, api_ports: Sequence[int]) -> str:
    return render(options, loopback_servers(api_ports))


def render_compose(settings: Settings | None = None) -> str:
    """Replicas of the compose service ``api`` are found in Docker's DNS, up to COMPOSE_API_SLOTS.

    ``settings``: those of the containers (``settings_from_env_file``); without, the defaults.
    """
    options = ProxyOptions.from_settings(settings or Settings.model_construct(), "*:18081", "*:8404")
    servers = (
        f"    server-template api {COMPOSE_API_SLOTS} api:{COMPOSE_API_PORT} check "
        "resolvers docker init-addr none"
    )
    return render(options, servers, DOCKER_RESOLVERS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.haproxy", description=__doc__)
    sub = parser.add_subparsers(dest="target", required=True)
    compose = sub.add_parser("compose", help="the config compose.yaml mounts (var/compose/haproxy.cfg)")
    compose.add_argument(
        "--env-file", type=Path, help="the containers' settings file (compose's env_file); else the defaults"
    )
    compose.add_argument("--output", type=Path, help="write it to this file instead of standard output")
    cluster = sub.add_parser("cluster", help="API replicas on loopback ports")
    cluster.add_argument("--bind", default="127.0.0.1:18081")
    cluster.add_argument("--stats-bind", default="127.0.0.1:8404")
    cluster.add_argument("--check-inter-ms", type=int, default=2000)
    cluster.add_argument("ports", type=int, nargs="+", help="the API replicas' ports")
    args = parser.parse_args(argv)
    if args.target == "compose":
        try:
            settings = None if args.env_file is None else settings_from_env_file(args.env_file)
        except SettingsError as exc:
            print(f"deploy.haproxy: {exc}", file=sys.stderr)
            return 2
        text = render_compose(settings)
        if args.output is None:
            sys.stdout.write(text)
        else:
            # Whole or not at all: HAProxy must never start on half a file.
            args.output.parent.mkdir(parents=True, exist_ok=True)
            partial = args.output.with_suffix(".tmp")
            partial.write_text(text)
            partial.replace(args.output)
    else:
        options = ProxyOptions.from_settings(load_settings(), args.bind, args.stats_bind, args.check_inter_ms)
        sys.stdout.write(render_cluster(options, args.ports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
