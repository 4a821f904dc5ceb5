# sensorhub developer commands. Each target sets up what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test
DEMO_STAMP := $(VENV)/.installed-demo

.PHONY: test check lint format typecheck pytest venv clean simulate demo soak bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The optional C kernel of the streaming pipeline, compiled by every (editable) install.
KERNEL := hatch_build.py sensorhub/pipeline/_kernel.c

# Reinstall when the project's dependency list or the C kernel changes.
$(STAMP): pyproject.toml $(KERNEL) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The demo needs the embedded broker, the report plots and the dashboard, not the test tools.
$(DEMO_STAMP): pyproject.toml $(KERNEL) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[broker,report,dashboard]'
	touch $(DEMO_STAMP)

## make demo: the whole product on a simulated wearer (6 min at 20x), embedded broker, no hardware.
demo: $(DEMO_STAMP)
	$(BIN)/sensorhub demo

## make test: lint, type-check and run the whole test suite (the command CI runs).
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

## make check: lint and type-check only (fast).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## make simulate: write a simulated desk session into out/desk_session.
simulate: $(STAMP)
	$(BIN)/sensorhub simulate desk_session -o out/desk_session

## make bench: every benchmark in bench/ (repeated; median and spread) into bench/results.json and docs/performance.md.
bench: $(STAMP)
	$(BIN)/python bench/run_all.py

## make soak: 10 min of one wearer on three emulated BLE sensors with faults injected; checks delivery and leaks.
soak: $(STAMP)
	$(BIN)/python bench/soak.py --page --out bench/soak-results.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out
