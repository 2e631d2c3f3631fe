# One entry point for every routine task. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR := .demo
CLUSTER_DIR ?= $(HOME)/.local/state/finops-operator/clusters/finops-dev
KUBECONFIG_DEMO := $(CLUSTER_DIR)/kubeconfig
DEMO_WEBHOOK_PORT ?= 9443
DEMO_KUBECTL := KUBECONFIG=$(KUBECONFIG_DEMO) kubectl
# What `make demo` shows admission doing, as kubectl arguments (dry runs: nothing is created).
TRY_REJECTED := apply --dry-run=server -f samples/admission/over-cpu-cap.yaml
TRY_INJECTED := create --dry-run=server -f samples/admission/region-injected.yaml -o jsonpath='{.spec.template.spec.affinity}'
PYTEST_ARGS ?=
# Test files run on this many workers (pytest-xdist; each integration worker starts its own control plane).
TEST_WORKERS ?= 2
PARALLEL := -n $(TEST_WORKERS) --dist loadfile

.PHONY: help setup test-deps test unit integration lint verify crds bench demo demo-down cluster-up cluster-down clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-14s %s\n", $$1, $$2}'

$(BIN)/finops: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/finops ## Create .venv with the operator and its dev tools

# The metric tests run a real Prometheus and the Argo CD end-to-end test a real redis-server: without
# them those tests would fail, and a skip is not a pass. FINOPS_SKIP_PROMETHEUS_TESTS=1 skips the
# metric tests on purpose (and says so, loudly).
TEST_PACKAGES := prometheus:prometheus promtool:prometheus redis-server:redis-server
test-deps: ## Make sure Debian's prometheus, promtool and redis-server are there (installs them as root with apt)
	@if [ -n "$$FINOPS_SKIP_PROMETHEUS_TESTS" ]; then \
		echo "!!! FINOPS_SKIP_PROMETHEUS_TESTS is set: the metric tests will be SKIPPED, not passed !!!" >&2; \
	fi; \
	missing() { for pair in $(TEST_PACKAGES); do \
		command -v "$${pair%%:*}" >/dev/null || echo "$${pair##*:}"; done | sort -u | paste -sd' '; }; \
	packages=$$(missing); \
	if [ -n "$$packages" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's $$packages (the tests start their own servers on 127.0.0.1)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$packages >/dev/null; \
		packages=$$(missing); \
	fi; \
	if [ -n "$$packages" ]; then \
		echo "The tests need Debian's $$packages. Install them with:" >&2; \
		echo "    sudo apt-get install $$packages" >&2; \
		exit 1; \
	fi

test: setup test-deps ## Run every test: unit, then integration on a real control plane (built on first use)
	$(BIN)/python -m tests.build_tools
	$(BIN)/python -m pytest $(PARALLEL) $(PYTEST_ARGS)

unit: setup ## Unit tests only (no cluster)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

integration: setup test-deps ## Integration tests only (real control plane)
	$(BIN)/python -m tests.build_tools
	$(BIN)/python -m pytest $(PARALLEL) tests/integration $(PYTEST_ARGS)

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
bench: setup ## Benchmarks: forecaster throughput, the demand-trace replay (BENCH_ARGS="--plot replay.png"), anomalies
	$(BIN)/python benchmarks/forecast_throughput.py
	$(BIN)/python benchmarks/replay.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/anomalies.py

cluster-up: setup ## Start the local control plane (builds binaries the first time)
	$(BIN)/finops dev cluster up --dir $(CLUSTER_DIR)

cluster-down: setup ## Stop the local control plane
	$(BIN)/finops dev cluster down --dir $(CLUSTER_DIR)

demo: cluster-up ## Control plane up, CRDs and samples applied, operator (with admission) running
	@mkdir -p $(DEMO_DIR)
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl apply -k crds/
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl wait --for=condition=Established crd --all --timeout=60s
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl apply -f samples/
	@if [ -f $(DEMO_DIR)/operator.pid ] && kill -0 $$(cat $(DEMO_DIR)/operator.pid) 2>/dev/null; then \
		echo "operator already running (pid $$(cat $(DEMO_DIR)/operator.pid))"; \
	else \
		KUBECONFIG=$(KUBECONFIG_DEMO) nohup $(BIN)/finops run --sample-interval 10 \
			--webhook --webhook-port $(DEMO_WEBHOOK_PORT) \
			> $(DEMO_DIR)/operator.log 2>&1 & echo $$! > $(DEMO_DIR)/operator.pid; \
		echo "operator started (pid $$(cat $(DEMO_DIR)/operator.pid), log $(DEMO_DIR)/operator.log)"; \
	fi
	@echo "waiting for every policy, region and fleet to report Ready (sites roll out, regions audit)..."
	@KUBECONFIG=$(KUBECONFIG_DEMO) kubectl wait --for=condition=Ready fop,ef --all -A --timeout=180s >/dev/null
	@KUBECONFIG=$(KUBECONFIG_DEMO) kubectl wait --for=condition=Ready sovr --all --timeout=180s >/dev/null
	@for i in $$(seq 60); do \
		$(DEMO_KUBECTL) get validatingwebhookconfiguration/finops.dev mutatingwebhookconfiguration/finops.dev \
			>/dev/null 2>&1 && break; \
		[ $$i = 60 ] && { echo "the operator registered no webhooks; see $(DEMO_DIR)/operator.log" >&2; exit 1; }; \
		sleep 1; \
	done
	KUBECONFIG=$(KUBECONFIG_DEMO) kubectl get finops -A
	@echo
	@echo "Admission is on (samples/admission/; --dry-run=server creates nothing). A Deployment over a cap is rejected:"
	@echo "  $$ kubectl $(TRY_REJECTED)"
	@$(DEMO_KUBECTL) $(TRY_REJECTED) 2>&1 | sed 's/^/  /'
	@echo "One that says nothing about placement gets the region's node affinity injected:"
	@echo "  $$ kubectl $(TRY_INJECTED)"
	@$(DEMO_KUBECTL) $(TRY_INJECTED) 2>&1 | sed 's/^/  /'; echo
	@echo
	@echo "Try it:  export KUBECONFIG=$(KUBECONFIG_DEMO); kubectl get finops -A; kubectl describe fop -n ai-workloads"
	@echo "Stop it: make demo-down"

demo-down: ## Stop the demo operator and the local control plane
	@if [ -f $(DEMO_DIR)/operator.pid ]; then kill $$(cat $(DEMO_DIR)/operator.pid) 2>/dev/null || true; rm -f $(DEMO_DIR)/operator.pid; fi
	@if [ -x $(BIN)/finops ]; then $(BIN)/finops dev cluster down --dir $(CLUSTER_DIR); fi

clean: demo-down ## Remove the virtualenv and caches (keeps the built binaries in ~/.cache)
	rm -rf $(VENV) $(DEMO_DIR) .mypy_cache .ruff_cache .pytest_cache
