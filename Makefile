# The project's verbs. `make demo` and `make test` bootstrap everything on a fresh machine
# (a .venv from pyproject.toml; from npm, the CDK CLI for synth/deploy and the asl-validator
# the tests run on every state machine).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CDK := node_modules/.bin/cdk
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export AWS_DEFAULT_REGION ?= us-east-1

CUSTOMERS ?= 1000
DAYS ?= 30

.PHONY: demo console test lint format synth bench deploy clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

$(CDK): package.json
	npm install --no-audit --no-fund --silent
	touch $(CDK)

demo: $(STAMP)
	$(VENV)/bin/kizuna local run --customers $(CUSTOMERS) --days $(DAYS) --summary-json out/demo-summary.json

# `make console`: the demo's shop, then its console and API on http://127.0.0.1:8080/console
# (users and passwords printed; Ctrl-C to stop)
console: $(STAMP)
	$(VENV)/bin/kizuna local run --customers $(CUSTOMERS) --days $(DAYS) --serve

# One worker per core (pytest-xdist), a test file's tests in one worker (module-scoped
# fixtures such as a CDK synth are built once); `make test PYTEST_ARGS=-n0` runs in one process.
PYTEST_ARGS ?= -n auto --dist loadfile --no-loadscope-reorder
test: $(STAMP) $(CDK)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy layers/kizuna tools/kizuna_tools infra functions bench

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

synth: $(STAMP) $(CDK)
	$(CDK) synth --quiet

# `make bench`: every benchmark (import, rendering, scoring, the pipeline at the demo's
# 1,000 x 30 — 10,000 x 90 with `bench/run.py --customers 10000 --days 90` takes hours on
# moto —, cold start, hot paths, cost model), written to docs/PERFORMANCE.md and
# out/bench.json. `make bench QUICK=1` (CI, about 2 minutes on 2 cores): small sizes, written
# to out/PERFORMANCE.quick.md and out/bench.quick.json (out/ is git-ignored: CI stays clean).
# New sections merged into the committed figures without the long run, e.g.:
#   .venv/bin/python bench/run.py --only pipeline,transitions,coldstart,hotpath \
#       --customers 500 --days 14 --reuse out/bench.json
bench: $(STAMP)
	$(PY) bench/run.py $(if $(QUICK),--quick,)

deploy: $(STAMP) $(CDK)
	$(CDK) deploy

clean:
	rm -rf cdk.out out .pytest_cache .mypy_cache .ruff_cache
