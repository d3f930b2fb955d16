# wirewatch: `make run` (the pipeline on an embedded broker with a demo feed) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_%-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-24s %s\n", $$1, $$2}'
	@echo "  bench-<name>             run bench/<name>.py (dashes become underscores):"
	@ls bench/*.py 2>/dev/null | sed -e 's|bench/||' -e 's|\.py$$||' -e 's|_|-|g' \
		-e '/^--init--$$/d' -e '/^evaldata$$/d' -e '/^processes$$/d' -e '/^storydata$$/d' -e 's|^|                             bench-|'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: wirewatch needs Python 3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(STAMP) ## create .venv and install wirewatch with its dependencies

prometheus: ## install Prometheus (Debian package) when promtool/prometheus are absent
	@if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then \
		echo "installing Debian package prometheus"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi

run: install ## run the whole pipeline with the embedded broker and the bundled demo feed
	$(VENV)/bin/wirewatch run

lint: install ## ruff (format check + lint) and mypy --strict
	$(VENV)/bin/ruff format --check services wirewatch_tools tests bench examples
	$(VENV)/bin/ruff check services wirewatch_tools tests bench examples
	$(VENV)/bin/mypy

format: install ## apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff format services wirewatch_tools tests bench examples
	$(VENV)/bin/ruff check --fix services wirewatch_tools tests bench examples

test-unit: install ## unit tests only (seconds, no servers)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-faults: install ## the full fault-injection suite (two kills a service, 30 s outage, replicas)
	WIREWATCH_FAULTS=full $(PY) -m pytest tests/faults $(PYTEST_ARGS)

test: install prometheus lint ## install everything, lint, type-check, run all tests
	$(PY) -m pytest $(PYTEST_ARGS)

bench: ## list the benchmarks (run one with make bench-<name>)
	@ls bench/*.py | sed -e 's|bench/||' -e 's|\.py$$||' -e 's|_|-|g' -e '/^--init--$$/d' -e '/^evaldata$$/d' -e '/^processes$$/d' -e '/^storydata$$/d' -e 's|^|make bench-|'

bench-e2e-replicas: install ## the pipeline's maximum with 2 extractor and 2 coder replicas beside 1 of each
	$(PY) -m bench.e2e --replicas 2

bench-%: install
	$(PY) -m bench.$(subst -,_,$*)

soak: install ## the whole pipeline at 50% of its maximum load for WIREWATCH_SOAK_SECONDS (1800; not in CI)
	$(PY) -m bench.e2e --soak

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install prometheus run lint format test-unit test test-faults bench bench-e2e-replicas soak clean
