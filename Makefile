# Set-up is two commands: `make demo` (the main job) and `make test` (lint + tests).
# Both create .venv and install what they need by themselves, as does `make docs`
# (the documentation site, into site/).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export KERAS_BACKEND := torch
export PYTHONHASHSEED := 0

.PHONY: test demo lint bench docs clean

$(STAMP): requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench examples docs/scripts
	$(VENV)/bin/ruff format --check src tests bench examples docs/scripts
	$(VENV)/bin/mypy src

test: lint
	$(PY) -m pytest -q -n 2

demo: $(STAMP)
	$(PY) -m maskwise.demo

docs: $(STAMP)
	$(PY) -m mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(PY) bench/rnn.py --quick

clean:
	rm -rf $(VENV) demo_output site .pytest_cache .ruff_cache
