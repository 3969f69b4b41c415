# Two commands matter: `make run` and `make test`. Both set everything up themselves.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
PY_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

.PHONY: setup run test lint bench chaos clean

setup: $(STAMP_PY) $(STAMP_NPM)

$(STAMP_PY): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PY) || $(PY_BOOT) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-dev.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e . 2>&1 | { grep -v "is ignored: it is neither" || true; }
	@touch $@

$(STAMP_NPM): package.json
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	$(PY) -m sandbox.run

# The whole suite (Pega behind the dx-v2 adapter, and both adapters where a suite is parametrized),
# then the Pega -> Exchange suites once more behind the recommended sync-service adapter.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)
	@if [ -z "$(PYTEST_ARGS)" ]; then $(PY) -m pytest -q tests/sync_outbound --pega-adapter sync-service; fi

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: setup
	$(PY) -m bench

# the seeded chaos harness (README "Chaos harness"): SEEDS=1-200, CHAOS_ARGS="--no-faults" etc.
SEEDS ?= 1-10
chaos: setup
	$(PY) -m bench chaos --seeds $(SEEDS) $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) node_modules .sandbox .pytest_cache .mypy_cache .ruff_cache
