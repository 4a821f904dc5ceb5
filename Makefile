# sensorhub developer commands. Each target sets up what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-test

.PHONY: test check lint format typecheck pytest venv clean simulate

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

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

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache out
