# Two commands from a fresh clone:  `make train`  and  `make test`.
# Each creates the virtual environment (.venv) on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=

.PHONY: train test test-all lint typecheck check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,sim,lerobot]'
	# The ALOHA scene files (MJCF + meshes) without gym-aloha's own dependencies, which do not
	# install on every Python this project supports; act_hydra.aloha_sim finds them on disk.
	$(PY) -m pip install --quiet --no-deps gym-aloha==0.1.5
	touch $@

train: $(VENV)/.installed  ## quickstart: the small ACT on the built-in task (CPU, a few minutes)
	$(PY) -m act_hydra.train $(ARGS)

test: $(VENV)/.installed  ## the fast lane (CPU, a few minutes)
	$(PY) -m pytest $(ARGS)

test-all: $(VENV)/.installed  ## every test, slow ones included
	$(PY) -m pytest -m "slow or not slow" $(ARGS)

lint: $(VENV)/.installed  ## ruff: lint rules and formatting
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed  ## mypy on the core modules ([tool.mypy] in pyproject.toml)
	$(VENV)/bin/mypy

check: lint typecheck

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
