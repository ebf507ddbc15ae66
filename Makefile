# Every target bootstraps the virtualenv it needs; a fresh clone needs only Python 3.11+.
# `make demo` and `make serve` install only what runs; lint and tests add the dev tools and the
# PostgreSQL and Redis extras. Versions come from constraints.txt.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/pip install --quiet -c constraints.txt
# Two stamps: the dev install is the runtime install plus more, so it always comes after it and a
# change of pyproject.toml, setup.py or constraints.txt redoes both.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: demo test test-fast lint serve serve-demo readme browser readme-tools vendor constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml setup.py constraints.txt | $(BIN)/python
	$(PIP) -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	$(PIP) -e '.[dev]'
	touch $(DEV_STAMP)

demo: $(RUN_STAMP)
	$(BIN)/wipsvc demo

serve: $(RUN_STAMP)
	$(BIN)/wipsvc serve

# The service plus the demo's sample shop on 127.0.0.1:8766, for the README's "Using it".
serve-demo: $(RUN_STAMP)
	$(BIN)/wipsvc serve-demo

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench alembic scripts
	$(BIN)/ruff format --check src tests bench alembic scripts
	$(BIN)/mypy

# The dashboard's browser test drives Debian's chromium; without it that test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is not installed: the browser test will be skipped"; fi; }

# The README's commands, which a test follows, use curl and jq.
readme-tools:
	@command -v curl >/dev/null 2>&1 && command -v jq >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl jq >/dev/null; \
	  else echo "curl and jq are needed by tests/e2e/test_readme_using_it.py: install them"; fi; }

# On two cores (pytest-xdist): every test uses ephemeral ports, scratch databases and Redis names
# of its own, so they run side by side; `pytest` alone still runs them one at a time.
test: lint browser readme-tools
	$(BIN)/pytest -n 2

test-fast: $(DEV_STAMP)
	$(BIN)/pytest -n 2 -m "not slow"

# Refresh the vendored browser files (Socket.IO client, Swagger UI, ReDoc) from npm; the service needs no npm.
vendor:
	npm ci && npm run vendor

readme: $(RUN_STAMP)
	$(BIN)/python scripts/update_readme.py
	$(BIN)/python scripts/update_asyncapi.py

# Pin what the dev virtualenv holds now (after changing dependencies in pyproject.toml).
constraints: $(DEV_STAMP)
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable | grep -vi '^wipsvc='; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
