# anypool: `make bench` (the main job) and `make test` each build .venv first.
# PYTHON picks the interpreter the venv is made from; VENV where it goes, e.g.
#   make test PYTHON="$(PYENV_VERSION=3.13.0 pyenv which python3)" VENV=.venv-3.13

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PYTEST_ARGS ?=
# e.g. make benchmarks BENCH_ARGS="--quick" or BENCH_ARGS="--scenarios S1,S3 --out s1s3.md"
BENCH_ARGS ?=
EXTRAS ?= dev,plot,postgres,uvloop,dask,apps

.PHONY: .venv bench test lint typecheck pytest benchmarks clean

# Re-installs only when pyproject.toml or the C extension changes (or the venv is new).
.venv: $(STAMP)

$(STAMP): pyproject.toml src/anypool/sync/_fastlock.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $@

bench: .venv
	$(BIN)/anypool bench --json bench-results.json --plot bench-results.png

test: lint typecheck pytest

LINTED := $(wildcard src tests benchmarks examples)

lint: .venv
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

typecheck: .venv
	$(BIN)/mypy

pytest: .venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

benchmarks: .venv
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev,plot,bench]'
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-* build dist src/*.egg-info src/anypool/sync/*.so .pytest_cache .mypy_cache .ruff_cache
