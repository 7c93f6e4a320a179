# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need
# (uv if missing, then the locked environment) and keep Prefect's state inside the project.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_HOME := $(CURDIR)/.prefect
export UV_COMPILE_BYTECODE := 1
export GX_ANALYTICS_ENABLED := false

UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
RUN := $(UV) run --locked --no-sync
ORACLE := tests/oracle

.PHONY: help install install-dev age-cli demo test test-fast bench lint format clean server deploy worker

# Running on schedule: a Prefect server (state in ./.prefect), the deployments, a worker.
PREFECT_PORT ?= 4200
API_URL ?= $(or $(PREFECT_API_URL),http://127.0.0.1:$(PREFECT_PORT)/api)
CONFIG ?= $(SPECTRON_BACKUP_CONFIG)

help:
	@echo "make demo    install and run the pipeline on an embedded SurrealDB (./.demo)"
	@echo "make test    install and run the whole test suite"
	@echo "make bench   run the benchmarks, results in benchmarks/results/"
	@echo "make install the runtime only, for a backup host (no test tools, npm or apt)"
	@echo "make lint    ruff"
	@echo "make server  a local Prefect server on 127.0.0.1:$(PREFECT_PORT) (UI and API; keep it running)"
	@echo "make deploy CONFIG=F   work pool, deployments of prefect.yaml, alert automations"
	@echo "make worker CONFIG=F   the worker that runs the deployments' flows (keep it running)"

# What a backup host needs: the locked runtime, without the test tools (`--inexact` leaves
# them in place where `install-dev` already put them).
install: .venv/.synced-runtime

# Everything the demo, the tests and the benchmarks use: the dev group, the `age` and `zstd`
# command lines, and SurrealDB's own exporter under Node (when node is present).
install-dev: .venv/.synced age-cli $(if $(shell command -v node 2>/dev/null),$(ORACLE)/node_modules/.package-lock.json)

UV_PRESENT := command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv

.venv/.synced-runtime: pyproject.toml uv.lock
	@$(UV_PRESENT)
	$(UV) sync --locked --no-dev --inexact
	@touch $@

.venv/.synced: pyproject.toml uv.lock
	@$(UV_PRESENT)
	$(UV) sync --locked
	@touch $@

# Debian's `age` and `zstd` command lines: the tests open an encrypted backup object with
# them, as an operator would without this tool. Installed only when missing, with apt-get, as root.
age-cli:
	@if ! command -v age >/dev/null 2>&1 || ! command -v zstd >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's age and zstd (for the encryption interchange test)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q age zstd >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q age zstd >/dev/null; }; \
	  else \
	    echo "note: age or zstd is missing (apt-get install age zstd): the interchange test will fail"; \
	  fi; \
	fi

# SurrealDB's own exporter/importer (engine 3.0.2 under Node), the oracle of the dump tests.
$(ORACLE)/node_modules/.package-lock.json: $(ORACLE)/package.json $(ORACLE)/package-lock.json
	cd $(ORACLE) && npm ci --no-audit --no-fund --loglevel=error

demo: install-dev
	$(RUN) spectron-backup demo

# Two workers (pytest-xdist): the suite alone keeps about one core busy. A module's tests stay
# on one worker, with its module-scoped fixtures (seeded stores) made once.
TEST_WORKERS ?= 2
test: install-dev
	$(RUN) pytest -n $(TEST_WORKERS) --dist loadscope

bench: install-dev
	$(RUN) python -m benchmarks.run

lint: install-dev
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: install-dev
	$(RUN) ruff format .
	$(RUN) ruff check --fix .

server: install
	$(RUN) prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

deploy: install
	PREFECT_API_URL=$(API_URL) $(RUN) python -m deployments.deploy $(if $(CONFIG),--config $(CONFIG))

worker: install
	@test -n "$(CONFIG)" || { echo "usage: make worker CONFIG=/path/to/config.yaml" >&2; exit 2; }
	SPECTRON_BACKUP_CONFIG=$(abspath $(CONFIG)) PREFECT_API_URL=$(API_URL) \
		$(RUN) prefect worker start --pool spectron-backup

clean:
	rm -rf .demo .prefect .pytest_cache
