# syntax=docker/dockerfile:1
# bulk-termination-operator image: `bulkterm operator` (kopf) on a slim Python base.
#
#   docker build -t bulk-termination-operator:0.1.0 .
#
# Every package comes from the hashed locks in requirements/ (`make lock`, docs/dependencies.md),
# installed with --require-hashes: the image holds exactly the files that were locked and
# tested. Stage 1 builds the project's own wheel with the locked build backend (no build
# isolation, so nothing unpinned is fetched for it); stage 2 installs requirements/runtime.lock,
# then that wheel with --no-deps, and `pip check` fails the build if the set is inconsistent.
# Nothing from stage 1 is copied into a layer (a bind mount), so the final image holds no build
# tools, sources, wheels or pip caches. The last step writes the image's SBOM (CycloneDX JSON:
# its Debian packages and Python distributions, with versions, purls and hashes) to
# /usr/share/doc/bulk-termination-operator/sbom.cdx.json, with hack/image/sbom.py (standard
# library only, run from the context's bind mount: nothing is installed to write it).
#
# The base is pinned by digest (the tag is kept for readers; the digest decides): a new
# python:3.11-slim-bookworm changes nothing until a reviewed commit moves the digest
# (Renovate does, renovate.json). docs/dependencies.md, "Supply chain".
#
# Without a registry or an index (hack/image/build.sh, `make image`): PYTHON_IMAGE names a
# local base with python3 and pip, and WHEELHOUSE a folder of the build context holding the
# locked files of requirements/runtime.lock and requirements/build.lock; then no step reaches
# a package index.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:c425d915a89a6dcd3183b1797ad9bd8878caff5a417f6371c8df93c8ea8b727f

FROM ${PYTHON_IMAGE} AS builder
# Empty: packages come from PyPI. Else a path relative to the build context (and
# re-included by .dockerignore), used with --no-index.
ARG WHEELHOUSE=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/build.lock requirements/
COPY operator/ operator/
# The context is bind-mounted only for the optional wheelhouse: no layer keeps it.
RUN --mount=type=bind,target=/context \
    if [ -n "$WHEELHOUSE" ]; then set -- --no-index --find-links="/context/$WHEELHOUSE"; fi \
 && pip install --no-cache-dir --require-hashes --only-binary=:all: "$@" -r requirements/build.lock \
 && pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG WHEELHOUSE=""
# The commit built (bulkterm_build_info's `commit` label): `--build-arg BULKTERM_COMMIT=...`.
ARG BULKTERM_COMMIT=unknown
ENV BULKTERM_COMMIT=${BULKTERM_COMMIT} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
# A passwd entry for the numeric user keeps getpass/pwd lookups working (kopf derives
# its identity from the user name when POD_ID is unset, e.g. under plain `docker run`).
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --no-log-init --uid 65532 --gid 65532 \
      --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin nonroot
# The locked dependencies (binary wheels only: nothing is compiled here), then our wheel from
# stage 1 with --no-deps and --no-index: nothing outside the lock gets in. Last, the SBOM of
# what is now there (with the sha256 of each wheel installed when the wheels are at hand: ours,
# and the wheelhouse's in an offline build; else the hashes runtime.lock accepted).
RUN --mount=type=bind,target=/context \
    --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    if [ -n "$WHEELHOUSE" ]; then set -- --no-index --find-links="/context/$WHEELHOUSE"; fi \
 && pip install --no-cache-dir --require-hashes --only-binary=:all: "$@" \
      -r /context/requirements/runtime.lock \
 && pip install --no-cache-dir --no-index --no-deps /wheels/bulk_termination_operator-*.whl \
 && pip check \
 && bulkterm --help > /dev/null \
 && if [ -n "$WHEELHOUSE" ]; then set -- --wheels="/context/$WHEELHOUSE"; else set --; fi \
 && python3 -I /context/hack/image/sbom.py --subject bulk-termination-operator \
      --lock /context/requirements/runtime.lock --wheels=/wheels "$@" \
      --output /usr/share/doc/bulk-termination-operator/sbom.cdx.json
USER 65532:65532
WORKDIR /tmp
# 8080: kopf health endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
ENTRYPOINT ["bulkterm", "operator"]
