# Everything the project needs is installed and started from here.
# `make test` is what CI runs (.ci/run); `make run` starts the operator.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
CLUSTER_DIR ?= $(CURDIR)/.cluster/default
PYTEST_ARGS ?=
INTEGRATION_WORKERS ?= $(if $(KUBECONFIG),1,2)
BENCH_NODES ?= 1000 5000
BENCH_GRID  ?= 5000x10
BENCH_RESYNC ?= 10
BENCH_JOINS ?= 20x120
BENCH_BURST ?= 1000
BENCH_BIG   ?= 50000x1

# What the end-to-end node needs from Debian: container runtime, CNI plugins,
# the image builder and the base image's bootstrapper.
NODE_PACKAGES := containerd runc containernetworking-plugins buildah mmdebstrap iproute2 util-linux openssl
E2E_ARGS    ?=

.PHONY: help venv controlplane monitoring-tools controlplane-clean cluster-up cluster-down run test lint unit integration fmt bench \
	e2e e2e-packages e2e-clean bench-recovery bench-profile bench-joins

help:
	@echo "make run           the operator with a local control plane (or \$$KUBECONFIG) and demo Nodes"
	@echo "make test          lint, unit, integration and (as root) end-to-end tests: what CI runs"
	@echo "make e2e           the chart on a real node, then a cluster of nodes on flannel (kubelet, containerd), as root"
	@echo "make e2e-clean     remove what a killed make e2e left behind"
	@echo "make cluster-up    start etcd + kube-apiserver + kube-controller-manager in CLUSTER_DIR"
	@echo "make cluster-down  stop it and remove CLUSTER_DIR"
	@echo "make controlplane  build the control plane binaries (once; cached)"
	@echo "make monitoring-tools  build promtool and fetch prometheus-operator's CRDs (once; cached)"
	@echo "make bench         every benchmark, one table next to the targets (BENCH_NODES=\"1000 5000\" BENCH_JOINS=20x120"
	@echo "                   BENCH_BURST=1000 BENCH_GRID=5000x10 BENCH_RESYNC=10 BENCH_BIG=50000x1; an empty one is left out)"
	@echo "make bench-joins   Node-join latency only, the operator against kube-controller-manager (BENCH_JOINS, BENCH_BURST)"
	@echo "make bench-profile the burst, idle and heartbeats at BENCH_GRID under py-spy, into .cluster/profile"
	@echo "make bench-recovery  recovery times after an API server restart, a watch gap, an expired continue token, a lost replica"

# uv installs the pinned requirements from its cache in seconds (pip takes
# half a minute); the bytecode is compiled at install, as pip does, since a
# test run starts the operator many times.
UV_VERSION := 0.13.9
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt requirements-dev.txt
	rm -rf $(VENV)  # made anew: a package dropped from the requirements must not stay installed
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements-dev.txt
	touch $@

controlplane:
	@controlplane/build.sh >/dev/null

# promtool and the ServiceMonitor and PrometheusRule CRDs, for tests/integration/test_monitoring.py.
monitoring-tools:
	@controlplane/monitoring.sh >/dev/null

controlplane-clean:
	rm -rf "$${CONTROLPLANE_CACHE:-$${XDG_CACHE_HOME:-$$HOME/.cache}/network-operator/controlplane}"

cluster-up: controlplane
	$(PYTHON) controlplane/cluster.py up $(CLUSTER_DIR)

cluster-down:
	$(PYTHON) controlplane/cluster.py down $(CLUSTER_DIR)

run: venv controlplane
	$(BIN)/python deploy/run_local.py

# mypy's cache lives with the other caches, outside the work tree: a fresh
# clone is checked in seconds instead of 20 (mypy re-checks what changed).
MYPY_CACHE ?= $(HOME)/.cache/network-operator/mypy
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --cache-dir $(MYPY_CACHE)

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# In two processes (PYTHONSAFEPATH: see INTEGRATION below): about 18 s instead of 28.
unit: venv
	PYTHONSAFEPATH=1 $(BIN)/pytest tests/unit -n 2 $(PYTEST_ARGS)

# Two phases. First every test but those marked `alone`, in
# $(INTEGRATION_WORKERS) processes, each with a control plane of its own (a
# file runs in one process); then the `alone` tests, which assert a bound in
# seconds, in one process on a machine with nothing else running. Exit code
# 5 (PYTEST_ARGS="-k ..." selected no test in that phase) is no failure.
# Markers go in MARKS (MARKS=slow), joined to each phase's own with "and": a
# -m in PYTEST_ARGS would replace the phase's (pytest keeps the last -m) and
# run the `alone` tests in parallel, so it is refused.
# Never more than one process against $KUBECONFIG: the
# tests clear its Nodes and Networks. PYTHONSAFEPATH: a worker is started as
# `python -c` from the root, where operator.py would shadow the standard
# library's operator module.
INTEGRATION := PYTHONSAFEPATH=1 $(BIN)/pytest tests/integration
MARKS ?=
phase = -m "$(1)$(if $(MARKS), and ($(MARKS)))"
integration: venv controlplane monitoring-tools
	@case " $(PYTEST_ARGS) " in *" -m"*) \
	  echo "make integration: give markers as MARKS=..., not -m in PYTEST_ARGS (it would replace each phase's own)" >&2; exit 2;; esac
	$(INTEGRATION) -n $(INTEGRATION_WORKERS) --dist loadfile $(call phase,not alone) $(PYTEST_ARGS) || [ $$? = 5 ]
	$(INTEGRATION) -p no:xdist $(call phase,alone) $(PYTEST_ARGS) || [ $$? = 5 ]

# As root, `make test` also runs the end-to-end tests; otherwise it says
# loudly that they are switched off (make e2e alone fails without root).
test: lint unit integration
ifeq ($(shell id -u),0)
	$(MAKE) --no-print-directory e2e
else
	@echo "make test: END-TO-END TESTS SWITCHED OFF: they need root (run 'make e2e' as root)." >&2
endif

e2e-packages:
	@[ "$$(id -u)" = 0 ] || { echo "make e2e: needs root: containerd, runc and the kubelet mount file systems and make cgroups and network namespaces" >&2; exit 1; }
	@missing=$$(for p in $(NODE_PACKAGES); do \
	  dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The single node (the chart's life on it), then the cluster of nodes on flannel.
e2e: venv e2e-packages
	@bin=$$(controlplane/build.sh node) && flannel=$$(tests/e2e/flannel/build.sh) && \
	images=$$(tests/e2e/images.sh "$$bin" "$$flannel") && \
	$(BIN)/python -P tests/e2e/node.py run "$$bin" "$$images" -- \
	  $(BIN)/pytest tests/e2e/test_chart_on_a_node.py $(E2E_ARGS) && \
	$(BIN)/python -P tests/e2e/cluster.py run "$$bin" "$$images" -- \
	  $(BIN)/pytest tests/e2e/test_flannel_cluster.py $(E2E_ARGS)

e2e-clean:
	$(PYTHON) -P tests/e2e/node.py clean

# About 15 minutes on 2 cores, and more for BENCH_BIG: see README.md "Performance".
bench: venv controlplane
	$(BIN)/python bench/run.py --pool "$(BENCH_NODES)" --joins "$(BENCH_JOINS)" --burst "$(BENCH_BURST)" \
	  --grid "$(BENCH_GRID)" --resync $(BENCH_RESYNC) --big "$(BENCH_BIG)"

bench-joins: venv controlplane
	$(BIN)/python bench/joins.py --steady "$(or $(BENCH_JOINS),0x0)" --burst "$(or $(BENCH_BURST),0)"

# py-spy is installed here only, on demand: no test needs it.
bench-profile: venv controlplane
	$(BIN)/uv pip install --python $(BIN)/python --quiet py-spy==0.4.3
	rm -rf .cluster/profile
	BENCH_PROFILE=$(CURDIR)/.cluster/profile $(BIN)/python bench/idle.py $(subst x, ,$(BENCH_GRID)) $(BENCH_RESYNC)
	$(BIN)/python bench/profile.py .cluster/profile/*.txt

bench-recovery: venv controlplane
	$(BIN)/python bench/recovery.py
