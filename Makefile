# taskbox — every target creates what it needs (virtual environments, test servers) on first use.
# Variables can be overridden from the environment: PYTHON, VENV, PYTEST_ARGS.

PYTHON      ?= python3
VENV        ?= .venv
VENV_PY      = $(VENV)/bin/python
FLYTEKIT_VENV ?= .venv-flytekit
FLYTEKIT_VERSION ?= 1.16.31
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-servers bench golden flytekit-venv system-deps clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

system-deps: ## install system packages (apt-get, as root) or say which are missing
	@scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install -q --upgrade pip
	$(VENV_PY) -m pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed ## the project's virtual environment (.venv) with taskbox and its test tools

demo: venv ## run the main job on local storage and print its outputs
	$(VENV_PY) scripts/demo.py

test-servers: ## install the loopback S3 server (moto) and GCS emulator into .venv-servers
	@scripts/install-test-servers.sh

test: venv test-servers flytekit-venv ## run the whole test suite (flytekit in .venv-flytekit checks wire compatibility)
	$(VENV_PY) -m pytest $(PYTEST_ARGS)

flytekit-venv: $(FLYTEKIT_VENV)/.installed ## flytekit in its own virtual environment (the peer, for bench and golden files)

$(FLYTEKIT_VENV)/.installed:
	$(PYTHON) -m venv $(FLYTEKIT_VENV)
	$(FLYTEKIT_VENV)/bin/pip install -q 'flytekit==$(FLYTEKIT_VERSION)' 'flytekitplugins-sqlalchemy==$(FLYTEKIT_VERSION)' pandas pyarrow pydantic 'psycopg[binary]'
	touch $@

golden: flytekit-venv ## regenerate the flytekit-made fixtures in tests/golden/
	$(FLYTEKIT_VENV)/bin/python tests/golden/make_fixtures.py
	$(FLYTEKIT_VENV)/bin/python tests/golden/make_sql_fixtures.py

bench: venv flytekit-venv ## measure taskbox against flytekit, side by side, as ratios
	$(VENV_PY) bench/run.py --flytekit-venv $(FLYTEKIT_VENV)

clean: ## remove virtual environments and caches
	rm -rf $(VENV) $(FLYTEKIT_VENV) .venv-servers .pytest_cache .hypothesis build demo-out
