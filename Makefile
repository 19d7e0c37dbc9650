# Set-up is two commands on a fresh machine: `make demo` and `make test`.
# Both create the Python virtualenv with the pinned moto server when it is missing.

VENV := .venv
PYTHON := $(VENV)/bin/python
BINARY := target/debug/vpc-mirror-controller
CARGO ?= cargo

.PHONY: all build demo test venv crd clean

all: build

build:
	$(CARGO) build

# The virtualenv is rebuilt when requirements-dev.txt changes.
$(VENV)/.installed: requirements-dev.txt
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

demo: venv build
	$(PYTHON) scripts/demo.py --binary $(BINARY)

test: venv
	VPCMIRROR_MOTO_PYTHON=$(abspath $(PYTHON)) $(CARGO) test --all-targets

# Writes the CRD generated from the Rust types; a test fails when the two differ.
crd: build
	$(BINARY) crd > crds/mirrorpolicy.yaml

clean:
	$(CARGO) clean
	rm -rf $(VENV)
