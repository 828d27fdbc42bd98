# Two commands on a fresh machine: `make demo` and `make test`. Everything else is here too.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT := build/demo

.PHONY: install demo test lint typecheck pytest bench clean

# torch first, pinned to the CPU build that lies on these machines (constraints.txt):
# an unpinned torch resolves a multi-GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[train,dev]'
	touch $@

install: $(STAMP)

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

pytest: install
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(PY) $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache
