# The two commands of the README: `make demo` and `make test`.
# Everything runs inside a local virtual environment (.venv) built from PyPI.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: demo test lint typecheck unit proto proto-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: create a local ledger on SQLite, append signed sample entries, verify it, print the checkpoint
demo: $(STAMP)
	$(BIN)/python -m clients.demo

## test: proto drift check, lint, format check, strict typing, the whole test suite
test: $(STAMP) proto-check lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

## proto: regenerate the checked-in Python code from proto/
proto: $(STAMP)
	$(BIN)/python -m tools.genproto gen

## proto-check: fail if the checked-in generated code differs from a fresh generation
proto-check: $(STAMP)
	$(BIN)/python -m tools.genproto --check gen

## bench: the log core's and the domain's append benchmarks (minutes: they fill 1,000,000-entry logs)
bench: $(STAMP)
	$(BIN)/python -m bench.append
	$(BIN)/python -m bench.domain_append

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
