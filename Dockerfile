# syntax=docker/dockerfile:1
# bulk-termination-operator image: `bulkterm operator` (kopf) on a slim Python base.
#
#   docker build -t bulk-termination-operator:0.1.0 .
#
# Stage 1 builds wheels for the project and all its dependencies; stage 2 installs them
# from a bind mount (nothing from stage 1 is copied into a layer), so the final image
# holds no build tools, sources, wheels or pip caches.
#
# Without a registry or an index (hack/image/build.sh, `make image`): PYTHON_IMAGE names a
# local base with python3 and pip, and WHEELHOUSE a folder of the build context holding
# wheels for every dependency and for the build backend (setuptools, wheel); then no step
# reaches a package index.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# Empty: dependencies come from PyPI. Else a path relative to the build context (and
# re-included by .dockerignore), used with --no-index.
ARG WHEELHOUSE=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
# All runtime dependencies ship manylinux wheels for CPython 3.11, so no compiler is
# needed; `pip wheel` still builds our own (pure-Python) wheel from source. The context is
# bind-mounted only for the optional wheelhouse: no layer keeps it.
RUN --mount=type=bind,target=/context \
    if [ -n "$WHEELHOUSE" ]; then set -- --no-index --find-links="/context/$WHEELHOUSE"; fi \
 && pip wheel --no-cache-dir --wheel-dir /wheels "$@" .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# A passwd entry for the numeric user keeps getpass/pwd lookups working (kopf derives
# its identity from the user name when POD_ID is unset, e.g. under plain `docker run`).
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --no-log-init --uid 65532 --gid 65532 \
      --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin nonroot
# --no-index: install exactly the wheels built above, never reach out to an index here.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/bulk_termination_operator-*.whl \
 && bulkterm --help > /dev/null
USER 65532:65532
WORKDIR /tmp
# 8080: kopf health endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090
ENTRYPOINT ["bulkterm", "operator"]
