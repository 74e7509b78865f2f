# Two commands on a fresh machine: `make demo` and `make test`. Everything installs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install kube demo test lint bench clean crds-sync image

$(STAMP): pyproject.toml tools/fetch_helm.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python tools/fetch_helm.py --dest $(BIN)
	touch $(STAMP)

install: $(STAMP)

# A real kube-apiserver v1.36.3 + etcd for the tests, built from Go modules (hack/kube) the
# first time (about 18 minutes on 2 cores) and cached outside the clone; KUBEBUILDER_ASSETS
# (envtest's convention) skips the build.
kube:
	@bash hack/kube/build.sh >/dev/null

# The operator image from ./Dockerfile, built by buildah on a local Debian base with no
# registry (hack/image; needs root; first time about 1.5 minutes, then about 30 s), then
# checked: entrypoint `bulkterm operator`, runs as 65532:65532, answers --version.
image: install
	@PYTHON=$(abspath $(BIN))/python bash hack/image/build.sh >/dev/null
	bash hack/image/check.sh

demo: install
	$(BIN)/bulkterm apply -f examples/bulktermination.yaml --simulator

# pytest exits 5 when it collects nothing; that must fail CI, not pass silently.
test: install kube
	$(BIN)/python -m pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check operator tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/run.py

crds-sync:
	cp crds/*.yaml charts/bulk-termination-operator/crds/

clean:
	rm -rf $(VENV) build dist *.egg-info
