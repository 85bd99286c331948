# One command runs the service (make run), one runs the tests (make test); make help lists the rest.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py

# --- Local development: the one place of the defaults every target below shares ----------------
# Settings come from the environment, then .env (read by manage.py), then settings.py (SQLite in
# db.sqlite3). These targets add DJANGO_DEBUG=1 (a development secret key) and talk to the local
# fake target. Any of them can be overridden: make run PORT=8001, make import TARGET_URL=...
HOST ?= 127.0.0.1
PORT ?= 8000
TARGET_PORT ?= 3000
TARGET_URL ?= http://127.0.0.1:$(TARGET_PORT)
SUPERUSER ?= admin
# With DJANGO_SUPERUSER_PASSWORD set, createsuperuser asks nothing.
NOINPUT = $(if $(DJANGO_SUPERUSER_PASSWORD),--noinput)
DJANGO_DEBUG ?= 1
DEV := DJANGO_DEBUG=$(DJANGO_DEBUG)
# The everyday targets migrate first, quietly, so that none meets a database without its tables.
MIGRATED := $(DEV) $(MANAGE) migrate --noinput --verbosity 0
# Extra arguments for the command a target runs: make sync ARGS=--dry-run
ARGS ?=

# The suite runs on PostgreSQL unless DATABASE_URL is given: make test DATABASE_URL=sqlite:///test.sqlite3
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/news
PYTEST_ARGS ?=
# make test prints the coverage of the product code (pyproject.toml, [tool.coverage]); the whole
# suite (no PYTEST_ARGS, as CI runs it) fails below COVERAGE_FLOOR percent. COVERAGE= measures
# nothing.
COVERAGE_FLOOR ?= 87
COVERAGE ?= --cov --cov-report=term:skip-covered \
	$(if $(PYTEST_ARGS),,--cov-fail-under=$(COVERAGE_FLOOR))

.PHONY: help install migrate run fake-target import superuser sync follow status prune reset test \
	lint format clean

help:
	@echo "make run           the API on http://$(HOST):$(PORT) (installs and migrates first)"
	@echo "make fake-target   a local target with 100 posts and 500 comments on port $(TARGET_PORT)"
	@echo "make import        import_initial_data from $(SHOWN_TARGET_URL)"
	@echo "make superuser     createsuperuser $(SUPERUSER) (no prompt with DJANGO_SUPERUSER_PASSWORD set)"
	@echo "make sync          sync_changes to $(SHOWN_TARGET_URL); make sync ARGS=--dry-run"
	@echo "make follow        sync_changes --follow to $(SHOWN_TARGET_URL), until Ctrl-C"
	@echo "make status        sync_status"
	@echo "make prune         prune_events (SYNC_EVENT_RETENTION_DAYS, SYNC_RUN_RETENTION_DAYS)"
	@echo "make reset         empty the database (asks first), to import again"
	@echo "make test          the test suite (PostgreSQL; DATABASE_URL=sqlite:///... for SQLite)"
	@echo "make lint          ruff, the import contracts and mypy (the typed seams: pyproject.toml)"
	@echo "make format | install | migrate | clean"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "Python 3.11 or newer is needed: make $(MAKECMDGOALS) PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

migrate: install
	$(DEV) $(MANAGE) migrate --noinput

run: migrate
	$(DEV) $(MANAGE) runserver $(HOST):$(PORT)

# Standard library only: it needs no virtualenv, so it can start while make run installs.
fake-target:
	$(PYTHON) -m fake_target --port $(TARGET_PORT) $(ARGS)

import: install
	@$(MIGRATED)
	@$(DEV) $(MANAGE) import_initial_data --url $(QUOTED_TARGET_URL) $(ARGS)

superuser: install
	@$(MIGRATED)
	$(DEV) $(MANAGE) createsuperuser --username $(SUPERUSER) --email $(SUPERUSER)@example.com $(NOINPUT) $(ARGS)

sync: install
	@$(MIGRATED)
	@$(DEV) $(MANAGE) sync_changes --url $(QUOTED_TARGET_URL) $(ARGS)

follow: install
	@$(MIGRATED)
	@$(DEV) $(MANAGE) sync_changes --follow --url $(QUOTED_TARGET_URL) $(ARGS)

status: install
	@$(MIGRATED)
	$(DEV) $(MANAGE) sync_status $(ARGS)

prune: install
	@$(MIGRATED)
	$(DEV) $(MANAGE) prune_events $(ARGS)

# Django's flush names the database and asks for "yes" before it deletes every row.
reset: install
	$(DEV) $(MANAGE) flush $(ARGS)

test: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(BIN)/pytest $(COVERAGE) $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis .mypy_cache .coverage

# The target as the shell is given it: in single quotes, whatever it holds (; & ( ) ' are
# allowed in a URL's user and password). As make shows it: the password of its user hidden (the
# commands that take it say nothing of the URL either; it is sent, never shown).
QUOTED_TARGET_URL = '$(subst ','\'',$(TARGET_URL))'
SHOWN_TARGET_URL = $(shell printf '%s' $(QUOTED_TARGET_URL) | sed -E 's|^([a-zA-Z][a-zA-Z0-9+.-]*://[^/:@]*):.*@|\1:***@|')
