# P360 operations portal. `make up` runs it, `make test` proves it. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PYTHONUNBUFFERED := 1
# Two pytest workers by default (CI has 2 cores; each worker gets its own test database).
PYTEST_ARGS ?= -n 2

# Find a Python 3.12+ interpreter: python3.13, python3.12, python3, then pyenv's versions folder.
# (pyenv shims exist for versions that are installed but not selected; they fail, so each
# candidate is actually run before it is chosen.)
define find_python
for c in python3.13 python3.12 python3 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3 /usr/local/bin/python3.1[23] /usr/bin/python3.1[23]; do \
  if "$$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then echo "$$c"; exit 0; fi; \
done; exit 1
endef

.PHONY: help up test bench lint fmt check venv dev-venv browser clean-db

help:
	@echo "make up     run the portal with demo data on http://127.0.0.1:8000 (embedded PostgreSQL unless DATABASE_URL)"
	@echo "make test   install test tools and run the whole suite"
	@echo "make bench  run the benchmarks in bench/ and print one table"
	@echo "make lint   ruff + mypy + Django checks + import contracts;  make fmt  format the code"

$(VENV)/bin/python:
	@py=$$($(find_python)) || { echo "error: P360 needs Python 3.12 or newer; none found (tried python3.13, python3.12, python3, pyenv versions)" >&2; exit 1; }; \
	echo "Using $$py ($$($$py --version))"; \
	"$$py" -m venv $(VENV) && $(PIP) install -q --upgrade pip

# Re-install only when a requirements file changes (stamp per file content).
$(VENV)/.req-runtime: requirements.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements.txt
	@touch $@

$(VENV)/.req-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/python
	$(PIP) install -q -r requirements-dev.txt
	@touch $@ $(VENV)/.req-runtime

venv: $(VENV)/.req-runtime
dev-venv: $(VENV)/.req-dev

up: venv
	$(PY) manage.py up

# Chromium for the browser tests: installed with apt when missing and we are root; tests skip otherwise.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "Installing chromium for browser tests (apt)..."; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "warning: could not install chromium; browser tests will be skipped"; \
	fi

test: dev-venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

bench: dev-venv
	$(PY) -m bench

lint: dev-venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run
	$(VENV)/bin/lint-imports  # layers and one-way imports (.importlinter, docs/architecture.md)

fmt: dev-venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Stops nothing that is running; removes the embedded database so the next `make up` starts fresh.
clean-db:
	rm -rf var/pgdata
