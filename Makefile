# One entry point for every routine task. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR := .demo
CLUSTER_DIR ?= $(HOME)/.local/state/finops-operator/clusters/finops-dev
KUBECONFIG_DEMO := $(CLUSTER_DIR)/kubeconfig
PYTEST_ARGS ?=

.PHONY: help setup test unit integration lint verify crds bench demo demo-down cluster-up cluster-down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/finops: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/finops ## Create .venv with the operator and its dev tools

test: setup ## Run every test: unit, then integration on a real control plane (built on first use)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: setup ## Unit tests only (no cluster)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: setup ## Integration tests only (real control plane)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

lint: setup ## ruff, mypy --strict, import-linter layering contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

verify: setup ## Fail if generated files (crds/) drifted from the models
	$(BIN)/finops crds --check

crds: setup ## Regenerate crds/ from the pydantic models
	$(BIN)/finops crds

BENCH_ARGS ?=
bench: setup ## Benchmarks: forecaster throughput and the demand-trace replay (BENCH_ARGS="--plot replay.png")
	$(BIN)/python benchmarks/forecast_throughput.py
	$(BIN)/python benchmarks/replay.py $(BENCH_ARGS)

cluster-up: setup ## Start the local control plane (builds binaries the first time)
	$(BIN)/finops dev cluster up --dir $(CLUSTER_DIR)

cluster-down: setup ## Stop the local control plane
	$(BIN)/finops dev cluster down --dir $(CLUSTER_DIR)

demo: cluster-up ## Control plane up, CRDs and samples applied, operator running, `kubectl get finops`
	@mkdir -p $(DEMO_DIR)
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl apply -k crds/
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl wait --for=condition=Established crd --all --timeout=60s
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl apply -f samples/
	@if [ -f $(DEMO_DIR)/operator.pid ] && kill -0 $$(cat $(DEMO_DIR)/operator.pid) 2>/dev/null; then \
		echo "operator already running (pid $$(cat $(DEMO_DIR)/operator.pid))"; \
	else \
		KUBECONFIG=$(KUBECONFIG_DEMO) nohup $(BIN)/finops run --sample-interval 10 \
			> $(DEMO_DIR)/operator.log 2>&1 & echo $$! > $(DEMO_DIR)/operator.pid; \
		echo "operator started (pid $$(cat $(DEMO_DIR)/operator.pid), log $(DEMO_DIR)/operator.log)"; \
	fi
	@echo "waiting for every policy, region and fleet to report Ready (sites roll out, regions audit)..."
	@KUBECONFIG=$(KUBECONFIG_DEMO) kubectl wait --for=condition=Ready fop,ef --all -A --timeout=180s >/dev/null
	@KUBECONFIG=$(KUBECONFIG_DEMO) kubectl wait --for=condition=Ready sovr --all --timeout=180s >/dev/null
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl get finops -A
	@echo
	@echo "Try it:  export KUBECONFIG=$(KUBECONFIG_DEMO); kubectl get finops -A; kubectl describe fop -n ai-workloads"
	@echo "Stop it: make demo-down"

demo-down: ## Stop the demo operator and the local control plane
	@if [ -f $(DEMO_DIR)/operator.pid ]; then kill $$(cat $(DEMO_DIR)/operator.pid) 2>/dev/null || true; rm -f $(DEMO_DIR)/operator.pid; fi
	@if [ -x $(BIN)/finops ]; then $(BIN)/finops dev cluster down --dir $(CLUSTER_DIR); fi

clean: demo-down ## Remove the virtualenv and caches (keeps the built binaries in ~/.cache)
	rm -rf $(VENV) $(DEMO_DIR) .mypy_cache .ruff_cache .pytest_cache
