# Every target bootstraps the virtualenv it needs; a fresh clone needs only Python 3.11+.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast lint serve readme browser vendor clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/wipsvc demo

serve: $(STAMP)
	$(BIN)/wipsvc serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench alembic scripts
	$(BIN)/ruff format --check src tests bench alembic scripts
	$(BIN)/mypy

# The dashboard's browser test drives Debian's chromium; without it that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed: the browser test will be skipped"; fi; }

test: lint browser
	$(BIN)/pytest

test-fast: $(STAMP)
	$(BIN)/pytest -m "not slow"

# Refresh the vendored browser files (Socket.IO client, Swagger UI, ReDoc) from npm; the service needs no npm.
vendor:
	npm ci && npm run vendor

readme: $(STAMP)
	$(BIN)/python scripts/update_readme.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
