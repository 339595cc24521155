# The README's two commands are `make demo` and `make test`; each does all set-up itself.
# The project installs with three extras: dev (test and lint tools), devstack (the dev
# servers' own dependencies: OpenBao, FastAPI, uvicorn; the product needs neither) and
# library (libcst and ruff, which the learning library's Python entries run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint schemas serve stop clean node-tools

setup: $(STAMP) system-bwrap

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,devstack,library]'
	@touch $(STAMP)

# The learning library's JavaScript tools (jscodeshift, eslint), pinned by the lock file,
# into the project-local folder the orchestrator looks in (ORCHESTRATOR_NODE_TOOLS).
NODE_TOOLS := tools/node
NODE_STAMP := $(NODE_TOOLS)/node_modules/.installed

node-tools: $(NODE_STAMP)

$(NODE_STAMP): $(NODE_TOOLS)/package-lock.json
	npm ci --prefix $(NODE_TOOLS) --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

# Debian packages: bubblewrap is codex's sandbox; chromium drives the browser tests.
.PHONY: system-bwrap system-chromium
system-bwrap:
	@scripts/ensure-debian-package bwrap bubblewrap

system-chromium:
	@scripts/ensure-debian-package chromium chromium

# `make demo BACKEND=app-server` runs the agents on codex app-server instead of mcp-server.
demo: setup
	$(BIN)/orchestrator demo $(if $(BACKEND),--backend $(BACKEND))

test: setup system-chromium node-tools
	$(BIN)/orchestrator spec-guard
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/orchestrator schemas export --check

schemas: setup
	$(BIN)/orchestrator schemas export

# The local dev stack (docs/deployments.md): Prefect server and UI, a worker, the dev Vault,
# the reference Runs API and the replay model, all recorded under .serve/ and stopped by PID.
# `ORCHESTRATOR_NOTIFY_WEBHOOK=URL make serve` also notifies URL when a run waits for a person.
serve: setup
	$(BIN)/orchestrator serve

stop:
	@if test -x $(BIN)/orchestrator; then $(BIN)/orchestrator stop; else echo "no $(VENV): nothing to stop"; fi

clean:
	rm -rf $(VENV) .runs out work .pytest_cache $(NODE_TOOLS)/node_modules
