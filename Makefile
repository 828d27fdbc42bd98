# Two commands on a fresh machine: `make demo` and `make test`. Everything else is here too.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT := build/demo
# The JupyterLab extension: sources in labextension/, built into workbench/labextension/.
LABEXT := labextension
LABEXT_OUT := workbench/labextension
LABEXT_BUILT := $(LABEXT_OUT)/package.json
LABEXT_SOURCES := $(shell find $(LABEXT)/src $(LABEXT)/style $(LABEXT)/schema -type f \
	-not -path '*/__tests__/*' 2>/dev/null) $(addprefix $(LABEXT)/,package.json yarn.lock tsconfig.json install.json)
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/jupyter-ml-workbench
# jlpm (yarn) comes with jupyterlab in the venv; the package.json scripts call jlpm and
# jupyter-builder by name, so the venv's bin goes first on PATH.
JLPM := PATH="$(CURDIR)/$(BIN):$$PATH" $(CURDIR)/$(BIN)/jlpm
CHROMIUM := /usr/bin/chromium
# checkov (tests/backends/kubernetes/test_checkov.py) pins older packaging, cachetools,
# networkx and python-dateutil than the project needs: it gets a virtual environment of its own.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)
LAB_PORT ?= 8888

.PHONY: install labextension demo test lint typecheck pytest jstest chromium checkov lab bench clean

# torch first, pinned to the CPU build that lies on these machines (constraints.txt):
# an unpinned torch resolves a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	# pip must not write through (or uninstall through) the development link made below
	test ! -L $(LABEXT_LINK) || rm $(LABEXT_LINK)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[train,serve,mlflow,dev]'
	touch $@

# Rebuilt only when a source, package.json or yarn.lock changed; --immutable keeps yarn.lock
# as committed.
$(LABEXT_BUILT): $(LABEXT_SOURCES) | $(STAMP)
	cd $(LABEXT) && $(JLPM) install --immutable && $(JLPM) build
	touch $@

# An editable install copies the built extension into the venv once (wheel shared-data), so
# a later rebuild would not show. `jupyter labextension develop` would link it instead, but
# it needs a `_jupyter_labextension_paths()` hook in the Python package; the link it makes is
# this one, so we make it directly (idempotent).
labextension: $(LABEXT_BUILT)
	@test "$$(readlink $(LABEXT_LINK))" = "$(CURDIR)/$(LABEXT_OUT)" || { \
		rm -rf $(LABEXT_LINK) && mkdir -p $(dir $(LABEXT_LINK)) && \
		ln -s $(CURDIR)/$(LABEXT_OUT) $(LABEXT_LINK) && echo "linked $(LABEXT_LINK)"; }

install: $(STAMP) labextension

demo: install
	mkdir -p $(DEMO_OUT)
	$(BIN)/papermill --cwd notebooks notebooks/quickstart.ipynb $(DEMO_OUT)/quickstart.ipynb
	@echo
	@echo "Executed notebook: $(DEMO_OUT)/quickstart.ipynb"
	$(BIN)/workbench ls

lint: install
	$(BIN)/ruff check workbench tests benchmarks
	$(BIN)/ruff format --check workbench tests benchmarks
	$(BIN)/hadolint --config .hadolint.yaml $$(find images -name Dockerfile | sort)

typecheck: install
	$(BIN)/mypy

# two workers (pytest-xdist): about 40% less wall time on two cores; tests/parallel.py keeps
# together what must not be split and gives an `alone` test the machine to itself
pytest: install chromium checkov
	$(BIN)/pytest -q -n 2 --dist loadgroup

jstest: install
	cd $(LABEXT) && $(JLPM) test

# tests/browser drives Debian's Chromium through Playwright (never `playwright install`).
chromium:
	test -x $(CHROMIUM) || (apt-get update && apt-get install -y chromium)

# ~50 s the first time (about 290 MB); nothing once installed
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $@

checkov: $(CHECKOV_STAMP)

# The checks run side by side (and checkov's own venv installs next to the project's), then the
# suite alone: its timing-sensitive tests get the machine to themselves.
test:
	$(MAKE) -j3 --output-sync=target lint typecheck jstest chromium checkov
	$(MAKE) pytest

# JupyterLab with the Workbench sidebar, workloads on the local backend.
lab: install
	WORKBENCH_BACKEND=local $(BIN)/jupyter lab --no-browser --port $(LAB_PORT) \
		$$(test "$$(id -u)" != 0 || echo --allow-root)

bench: install
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(PY) $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) build .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(LABEXT)/node_modules $(LABEXT)/lib $(LABEXT)/.yarn $(LABEXT)/*.tsbuildinfo $(LABEXT_OUT)
