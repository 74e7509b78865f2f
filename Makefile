# Two commands on a fresh machine: `make demo` and `make test`. Everything installs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install lock kube kstatus gitops-testdata demo test lint explore bench clean crds-sync image plugin-archive

#: The hashed locks (requirements/lock.py makes them from pyproject.toml; `make lock`).
LOCKS := requirements/build.lock requirements/test.lock requirements/runtime.lock
PIP_INSTALL := $(BIN)/python -m pip install -q --disable-pip-version-check

# One line per phase (the first install takes a minute or more); the tools' own output only
# when something goes wrong (pip -q and fetch_helm print errors on stderr). Everything comes
# from the locks with every file's hash checked (pip, the build backend, the dependencies and
# the test tools); the project itself is installed last, editable and with --no-deps, so
# nothing unpinned gets in, and `pip check` proves the set consistent.
$(STAMP): pyproject.toml $(LOCKS) tools/fetch_helm.py
	@test -x $(BIN)/python || echo "install: creating a virtual environment in $(VENV)"
	@$(PYTHON) -m venv $(VENV)
	@echo "install: installing bulk-termination-operator and its test tools from requirements/*.lock (pip, hashes checked; about a minute the first time)"
	@$(PIP_INSTALL) --require-hashes -r requirements/build.lock
	@$(PIP_INSTALL) --require-hashes -r requirements/test.lock
	@$(PIP_INSTALL) --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check -q --disable-pip-version-check >/dev/null
	@echo "install: fetching helm into $(BIN)"
	@$(BIN)/python tools/fetch_helm.py --dest $(BIN) >/dev/null
	@touch $(STAMP)

install: $(STAMP)
	@:

# Refresh requirements/*.lock from pyproject.toml (reaches PyPI; docs/dependencies.md): pins
# still allowed are kept; UPGRADE=1 takes the newest allowed version of everything,
# UPGRADE=name (or "a b") of those packages. Commit the locks with the pyproject.toml change.
lock: install
	@$(BIN)/python requirements/lock.py --uv $(BIN)/uv $(if $(filter 1,$(UPGRADE)),--upgrade,$(foreach p,$(UPGRADE),--upgrade-package $(p)))

# A real kube-apiserver v1.36.3 + etcd for the tests, built from Go modules (hack/kube) the
# first time (about 18 minutes on 2 cores) and cached outside the clone; KUBEBUILDER_ASSETS
# (envtest's convention) skips the build.
kube:
	@bash hack/kube/build.sh >/dev/null

# kstatus's own verdict (sigs.k8s.io/cli-utils) for tests/gitops, built from hack/kstatus
# (about a minute the first time) and cached outside the clone; without Go the tests that
# need it skip and say so.
kstatus:
	@if command -v go >/dev/null; then bash hack/kstatus/build.sh >/dev/null; fi

# Re-capture the BulkTerminations the GitOps health checks are tested against (real API
# server, operator and simulator; about 15 s): deploy/argocd/.../testdata. docs/gitops.md.
gitops-testdata: install kube
	$(BIN)/python hack/gitops/capture.py

# The operator image from ./Dockerfile, built by buildah on a local Debian base with no
# registry (hack/image; needs root; first time about 1.5 minutes, then about 30 s), then
# checked: entrypoint `bulkterm operator`, runs as 65532:65532, answers --version.
image: install
	@PYTHON=$(abspath $(BIN))/python bash hack/image/build.sh >/dev/null
	bash hack/image/check.sh

# The kubectl plugin for krew (hack/krew/build.py, docs/krew.md): one archive per platform in
# dist/krew (kubectl-bulkterm, a PEX zipapp of the project and requirements/runtime.lock, run
# by the user's CPython 3.11 to 3.15), and plugins/krew/bulkterm.yaml with their sha256. The
# first run downloads the locked wheels of every platform (about a minute each, cached
# outside the clone); then about 25 s.
plugin-archive: install
	$(BIN)/python hack/krew/build.py

demo: install
	$(BIN)/bulkterm apply -f examples/bulktermination.yaml --simulator

# The suite runs in TEST_WORKERS processes (pytest-xdist; each worker starts its own control
# plane): most tests wait on processes, servers and timers, so more workers than cores pays
# (docs/adr/0004). TEST_WORKERS=0 runs everything in this one process.
# pytest exits 5 when it collects nothing; that must fail CI, not pass silently.
TEST_WORKERS ?= 6
test: install kube kstatus
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist load; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: install
	$(BIN)/ruff check operator tests bench
	$(BIN)/mypy

# The fault-schedule explorer at scale (make test runs 200 seeds): SEEDS=10000 by default.
SEEDS ?= 10000
explore: install
	$(BIN)/python -m tests.simulation.explorer --seeds $(SEEDS) --keep-going

bench: install
	$(BIN)/python bench/run.py

# The chart renders the CRD from its byte-identical copy (templates/crds.yaml; crds.enabled).
crds-sync:
	cp crds/*.yaml charts/bulk-termination-operator/files/crds/

clean:
	rm -rf $(VENV) build dist *.egg-info
