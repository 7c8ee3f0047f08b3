# The two commands of the README: `make demo` and `make test`.
# Everything runs inside a local virtual environment (.venv) built from PyPI.
# `make test` also uses Node.js when it is installed: npm packages pinned in
# package-lock.json go to node_modules/ (buf, for `buf lint` of proto/, and the
# gRPC libraries of the Node.js client test, tests/node/). Without npm those steps
# are skipped with a message; CUSTODY_REQUIRE_NODE=1 (set by .ci/run) makes them required.

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
NODE_STAMP = node_modules/.custody-installed

.PHONY: demo test lint typecheck unit proto proto-check proto-lint node_modules bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: create a local ledger on SQLite, append signed sample entries, verify it, print the checkpoint
demo: $(STAMP)
	$(BIN)/python -m clients.demo

## test: proto drift check, buf lint, lint, format check, strict typing, the whole test suite
test: $(STAMP) node_modules proto-check proto-lint lint typecheck unit

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

## proto-lint: `buf lint` of proto/ (buf from node_modules)
proto-lint: node_modules
	@if command -v npx >/dev/null 2>&1 && [ -x node_modules/.bin/buf ]; then \
		echo "npx --no-install buf lint proto"; \
		npx --no-install buf lint proto; \
	elif [ "$${CUSTODY_REQUIRE_NODE:-}" = 1 ]; then \
		echo "buf lint: buf is not installed (needs npm and node_modules/.bin/buf)" \
			"and CUSTODY_REQUIRE_NODE=1" >&2; \
		exit 1; \
	elif command -v npm >/dev/null 2>&1; then \
		echo "buf lint SKIPPED: node_modules/.bin/buf not found (run make node_modules)"; \
	else \
		echo "buf lint SKIPPED: npm not found"; \
	fi

## node_modules: npm ci of package-lock.json (buf; the Node.js client test's libraries)
node_modules: $(NODE_STAMP)

$(NODE_STAMP): package-lock.json package.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm ci --no-audit --no-fund"; \
		npm ci --no-audit --no-fund && touch $@; \
	elif [ "$${CUSTODY_REQUIRE_NODE:-}" = 1 ]; then \
		echo "node_modules: npm not found and CUSTODY_REQUIRE_NODE=1: install Node.js and npm" >&2; \
		exit 1; \
	else \
		echo "node_modules SKIPPED: npm not found" \
			"(buf lint and the Node.js client test will be skipped)"; \
	fi

## bench: the log core's and the domain's append benchmarks (minutes: they fill 1,000,000-entry logs)
bench: $(STAMP)
	$(BIN)/python -m bench.append
	$(BIN)/python -m bench.domain_append
	$(BIN)/python -m bench.grpc_append
	$(BIN)/python -m bench.grpc_floor

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
