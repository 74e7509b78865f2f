#!/usr/bin/env bash
# Build (or reuse) krew and its manifest validator, from the Go module sigs.k8s.io/krew at
# KREW_VERSION (the module's own go.sum pins its dependencies; the Go checksum database
# checks the module itself). tests/plugin_cli/test_krew.py installs the plugin with them.
#
# Prints the folder that holds `kubectl-krew` (the name krew installs itself under, so kubectl
# finds it as `kubectl krew`) and `validate-krew-manifest`. The cache lives outside the clone
# (BULKTERM_KREW_CACHE, default ~/.cache/bulk-termination-operator/krew-<version>-<stamp>),
# keyed by this script; one build at a time (flock), so parallel test workers wait for the
# first one's build and then reuse it. Cold: about 30 s (module download and build); warm:
# instant. Exit 2 when Go is missing.
#
# Built without a version stamp on purpose: krew then counts as a development build and never
# checks GitHub for a newer release (the tests also set KREW_NO_UPGRADE_CHECK).
set -euo pipefail

KREW_VERSION=v0.4.4
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
stamp="$(sha256sum "$here/krew.sh" | cut -c1-16)"
cache="${BULKTERM_KREW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulk-termination-operator/krew-${KREW_VERSION}-${stamp}}"

have() { [[ -x "$cache/kubectl-krew" && -x "$cache/validate-krew-manifest" ]]; }
if have; then
  echo "$cache"
  exit 0
fi

command -v go >/dev/null || { echo "Go is needed to build krew $KREW_VERSION (https://go.dev/dl)" >&2; exit 2; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if have; then  # another process built it while this one waited for the lock
  echo "$cache"
  exit 0
fi
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "building krew $KREW_VERSION into $cache (first time: about 30 seconds)" >&2
# `go install module@version` builds with the module's go.mod and go.sum, outside any
# workspace; GOTOOLCHAIN=local: never download another Go.
CGO_ENABLED=0 GOBIN="$tmp" GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
  go install -trimpath -ldflags='-s -w' \
  "sigs.k8s.io/krew/cmd/krew@$KREW_VERSION" \
  "sigs.k8s.io/krew/cmd/validate-krew-manifest@$KREW_VERSION" >&2
mv -f "$tmp/validate-krew-manifest" "$cache/validate-krew-manifest"
mv -f "$tmp/krew" "$cache/kubectl-krew"
echo "$cache"
