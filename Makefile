# Two commands from a fresh clone:  `make train`  and  `make test`.
# Each creates the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: train test test-all lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

train: $(VENV)/.installed  ## quickstart: the small ACT on the built-in task (CPU, a few minutes)
	$(PY) -m act_hydra.train $(ARGS)

test: $(VENV)/.installed  ## the fast lane (CPU, a few minutes)
	$(PY) -m pytest $(ARGS)

test-all: $(VENV)/.installed  ## every test, slow ones included
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
