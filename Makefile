# Everything the project needs is installed and started from here.
# `make test` is what CI runs (.ci/run); `make run` starts the operator.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
CLUSTER_DIR ?= $(CURDIR)/.cluster/default
PYTEST_ARGS ?=
BENCH_NODES ?= 1000 5000

.PHONY: help venv controlplane controlplane-clean cluster-up cluster-down run test lint unit integration fmt bench bench-recovery

help:
	@echo "make run           the operator with a local control plane (or \$$KUBECONFIG) and demo Nodes"
	@echo "make test          lint, unit and integration tests (what CI runs)"
	@echo "make cluster-up    start etcd + kube-apiserver + kube-controller-manager in CLUSTER_DIR"
	@echo "make cluster-down  stop it and remove CLUSTER_DIR"
	@echo "make controlplane  build the control plane binaries (once; cached)"
	@echo "make bench         this operator against kube-controller-manager node IPAM (BENCH_NODES=\"1000 5000\")"
	@echo "make bench-recovery  recovery times after an API server restart, a watch gap, a lost replica"

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

controlplane:
	@controlplane/build.sh >/dev/null

controlplane-clean:
	rm -rf "$${CONTROLPLANE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/network-operator/controlplane}"

cluster-up: controlplane
	$(PYTHON) controlplane/cluster.py up $(CLUSTER_DIR)

cluster-down:
	$(PYTHON) controlplane/cluster.py down $(CLUSTER_DIR)

run: venv controlplane
	$(BIN)/python deploy/run_local.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: venv controlplane
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test: lint unit integration

bench: venv controlplane
	$(BIN)/python bench/nodeipam.py $(BENCH_NODES)

bench-recovery: venv controlplane
	$(BIN)/python bench/recovery.py
