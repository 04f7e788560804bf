# taskbox — every target creates what it needs (virtual environments, test servers) on first use.
# Variables can be overridden from the environment: PYTHON, VENV, PYTEST_ARGS, TEST_WORKERS.

PYTHON      ?= python3
VENV        ?= .venv
VENV_PY      = $(VENV)/bin/python
FLYTEKIT_VENV ?= .venv-flytekit
FLYTEKIT_VERSION ?= 1.16.31
FLYTE2_VENV ?= .venv-flyte2
FLYTE2_VERSION ?= 2.12.1
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv demo test test-servers bench golden flyte2-golden flytekit-venv flyte2-venv orchestrator-venvs system-deps clean
.PHONY: docker-engine base-image images image-sizes image-test image-tags image-clean push

# Executor images (issue 6). The variants build on BASE_IMAGE: the local debootstrap base by default (the
# test machines reach no registry); a release passes BASE_IMAGE=python:3.11-slim-bookworm (the Dockerfiles'
# own default). Tags are $(REGISTRY)/executor-<variant>:$(VERSION)-py<python>, <python> read from BASE_IMAGE
# (PYTHON stays the host interpreter that makes the virtual environments).
REGISTRY    ?= ghcr.io/taskbox
VERSION     ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' src/taskbox/__init__.py)
REVISION    ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LOCAL_BASE_IMAGE ?= taskbox-base:bookworm
BASE_IMAGE  ?= $(LOCAL_BASE_IMAGE)
VARIANTS     = base sqlite sql http python
IMAGE_ARGS   = --base-image $(BASE_IMAGE) --registry $(REGISTRY) --version $(VERSION)
# make push records the pushed digests in LOCK (default: images/catalog.lock.toml, committed at release).
LOCK        ?=

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

system-deps: ## install system packages (apt-get, as root) or say which are missing
	@scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install -q --upgrade pip
	$(VENV_PY) -m pip install -q -e '.[test,lint]'
	touch $@

venv: $(VENV)/.installed ## the project's virtual environment (.venv) with taskbox and its test tools

demo: venv ## run the main job on local storage and print its outputs
	$(VENV_PY) scripts/demo.py

# make lint / make typecheck (both run first in make test): the tool versions are pinned in pyproject's `lint`
# extra. import-linter's contracts (pyproject [tool.importlinter]) hold the layers; mypy's settings are there too.
LINT_PATHS ?= src tests bench scripts examples
.PHONY: lint typecheck
lint: venv ## ruff check + ruff format --check + import-linter's layer contracts
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/lint-imports

typecheck: venv ## mypy on src (settings in pyproject [tool.mypy])
	$(VENV)/bin/mypy

test-servers: ## install the loopback S3 server (moto) and GCS emulator into .venv-servers, Azurite (npm) into .azurite
	@scripts/install-test-servers.sh

# make test runs the suite on TEST_WORKERS pytest-xdist processes: one per core plus one (many tests wait on
# subprocesses and servers; on 2 cores 3 workers beat 2), at most 8. The tests that must not compete (image
# builds; peak-memory, kill and disk-full tests) are grouped onto one worker each (tests/conftest.py
# XDIST_GROUPS, --dist loadgroup). TEST_WORKERS=0 runs the suite in one process, as before.
TEST_WORKERS ?= $(shell n=$$(( $$(nproc 2>/dev/null || echo 1) + 1 )); [ $$n -gt 8 ] && n=8; echo $$n)
TEST_XDIST   = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadgroup)

test: venv lint typecheck test-servers flytekit-venv flyte2-venv orchestrator-venvs base-image ## run the whole test suite on TEST_WORKERS processes (flytekit in .venv-flytekit checks wire compatibility; Docker for the image tests; the orchestrators' clients run the recipes)
	$(VENV_PY) -m pytest $(TEST_XDIST) $(PYTEST_ARGS)

.PHONY: soak
soak: venv test-servers ## the reliability suite scaled up (TASKBOX_SOAK=1: 5 GB SQLite result, 2 GB HTTP body, longer fault runs; needs ~16 GB free under the pytest temp dir)
	TASKBOX_SOAK=1 $(VENV_PY) -m pytest tests/reliability $(PYTEST_ARGS)

# make test runs the parsing fuzzer derandomised and bounded (a few seconds a target); make fuzz runs randomised
# batches for FUZZ_SECONDS split over its targets, and the literal property tests with the "fuzz" profile.
FUZZ_SECONDS ?= 600
.PHONY: fuzz
fuzz: venv ## fuzz inputs.pb/template parsing for FUZZ_SECONDS (600) and run the literal engine's property tests longer
	TASKBOX_FUZZ_SECONDS=$(FUZZ_SECONDS) HYPOTHESIS_PROFILE=fuzz $(VENV_PY) -m pytest tests/reliability/test_fuzz_parsing.py tests/literals/test_properties.py $(PYTEST_ARGS)

flytekit-venv: $(FLYTEKIT_VENV)/.installed ## flytekit in its own virtual environment (the peer, for bench and golden files)

$(FLYTEKIT_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FLYTEKIT_VENV)
	$(FLYTEKIT_VENV)/bin/pip install -q 'flytekit==$(FLYTEKIT_VERSION)' 'flytekitplugins-sqlalchemy==$(FLYTEKIT_VERSION)' pandas pyarrow pydantic 'psycopg[binary]'
	$(FLYTEKIT_VENV)/bin/pip install -q -e '.[sql,sqlite,http,azure]'
	touch $@

# The orchestrators' own clients (KFP, Airflow, Dagster, Prefect, hera for Argo), one pinned venv each: they run
# the recipes of docs/recipes.md against the built images (tests/images/orchestrators/).
orchestrator-venvs: ## the orchestrator clients in their own virtual environments (.venv-kfp, -airflow, -dagster, -prefect, -hera)
	@scripts/orchestrator-venvs.sh

flyte2-venv: $(FLYTE2_VENV)/.installed ## the flyte 2 SDK and taskbox[flyte2] in their own virtual environment (the v2 peer: a0 tests, bench)

$(FLYTE2_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FLYTE2_VENV)
	$(FLYTE2_VENV)/bin/pip install -q --upgrade pip
	$(FLYTE2_VENV)/bin/pip install -q 'flyte[connector]==$(FLYTE2_VERSION)' -e '.[flyte2,sql,sqlite]' pandas
	touch $@

flyte2-golden: flyte2-venv ## regenerate the flyte-2-made fixtures in tests/flyte2/golden/
	$(FLYTE2_VENV)/bin/python tests/flyte2/make_golden.py

golden: flytekit-venv ## regenerate the flytekit-made fixtures in tests/golden/
	set -e; for maker in tests/golden/make_*.py; do $(FLYTEKIT_VENV)/bin/python $$maker; done

bench: venv flytekit-venv flyte2-venv base-image ## measure taskbox against flytekit, side by side, as ratios (and the sqlite image's cold start)
	$(VENV_PY) bench/run.py --flytekit-venv $(FLYTEKIT_VENV) --flyte2-venv $(FLYTE2_VENV)

docker-engine: ## install docker.io and debootstrap (as root) and start dockerd without a bridge if none answers
	@scripts/docker-engine.sh

base-image: docker-engine ## the local Python base image: debootstrap bookworm + python3, docker import (once)
	@images/base/make-base.sh $(LOCAL_BASE_IMAGE)

images: venv base-image ## build every executor image variant, one after the other
	@for v in $(VARIANTS); do $(MAKE) --no-print-directory image-$$v || exit 1; done

image-%: venv base-image ## build one variant image: make image-sqlite
	$(VENV)/bin/taskbox image build --variant $* $(IMAGE_ARGS) --revision $(REVISION) --quiet

image-sizes: venv docker-engine ## each variant's uncompressed size and what it adds to BASE_IMAGE, beside flytekit's 549 MB
	@$(VENV)/bin/taskbox image sizes $(IMAGE_ARGS)

image-tags: venv docker-engine ## print each variant's image reference
	@$(VENV)/bin/taskbox image tags $(IMAGE_ARGS)

image-test: venv test-servers base-image ## the image tests only (tests/images: builds each variant once, runs them)
	$(VENV_PY) -m pytest tests/images $(PYTEST_ARGS)

image-clean: ## remove the images tests and benchmarks built (taskbox-test/*, taskbox-bench/*) and dangling build stages
	@docker images --format '{{.Repository}}:{{.Tag}}' | grep -E '^taskbox-(test|bench)/' | xargs -r docker rmi
	docker image prune -f

push: venv docker-engine ## push every variant (VARIANTS) to REGISTRY (only ever explicit) and record the digests in LOCK
	$(VENV)/bin/taskbox image push $(IMAGE_ARGS) $(foreach v,$(VARIANTS),--variant $(v)) $(if $(LOCK),--lock $(LOCK)) --quiet

clean: ## remove virtual environments and caches
	rm -rf $(VENV) $(FLYTEKIT_VENV) $(FLYTE2_VENV) .venv-servers .venv-kfp .venv-airflow .venv-dagster .venv-prefect .venv-hera .pytest_cache .hypothesis build demo-out
