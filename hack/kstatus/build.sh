#!/usr/bin/env bash
# Build (or reuse) hack/kstatus: a tiny program that prints kstatus's status.Compute verdict
# (sigs.k8s.io/cli-utils, pinned by go.sum) for each object of the YAML files it is given.
# tests/gitops/test_kstatus.py runs it over the captured BulkTerminations.
#
# Prints the path of the binary. The cache lives outside the clone (BULKTERM_KSTATUS_CACHE,
# default ~/.cache/bulk-termination-operator/kstatus-<stamp>), keyed by go.mod, go.sum,
# main.go and this script, so later clones and CI runs reuse it. Cold: about a minute
# (module download and build); warm: instant. Exit 2 when Go is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" "$here/build.sh" | sha256sum | cut -c1-16)"
cache="${BULKTERM_KSTATUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulk-termination-operator/kstatus-$stamp}"
if [[ -x "$cache/kstatus" ]]; then
  echo "$cache/kstatus"
  exit 0
fi

command -v go >/dev/null || { echo "Go is needed to build hack/kstatus (https://go.dev/dl)" >&2; exit 2; }
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "building hack/kstatus into $cache (first time: about a minute)" >&2
cd "$here"
# -mod=readonly: go.sum is the pin; a build never rewrites it.
CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
  go build -trimpath -ldflags='-s -w' -o "$tmp/kstatus" . >&2
mv -f "$tmp/kstatus" "$cache/kstatus"
echo "$cache/kstatus"
