#!/usr/bin/env bash
# Build (or reuse) the control plane the test suite runs against: a real
# kube-apiserver v1.36.3 and etcd v3.6.8, from Go modules pinned by go.sum.
#
# Prints the folder that holds the binaries (envtest's layout: kube-apiserver,
# etcd, kubectl).  Honours KUBEBUILDER_ASSETS: a contributor who already has
# envtest binaries skips the build entirely.  The cache lives outside the clone
# (BULKTERM_KUBE_CACHE, default ~/.cache/bulk-termination-operator/k8s-v1.36.3)
# so later clones and CI runs on the same machine reuse it.  Cold: ~18 min on
# 2 cores and ~2.7 GB of Go build cache; warm: a few seconds.
set -euo pipefail

K8S_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

have() { [[ -x "$1/kube-apiserver" && -x "$1/etcd" ]]; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if have "$KUBEBUILDER_ASSETS"; then
    echo "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS does not hold kube-apiserver and etcd" >&2
  exit 2
fi

cache="${BULKTERM_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulk-termination-operator/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}}"
# The module graph and this script (its flags) that produced a cached build are its identity.
stamp="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
if have "$cache" && [[ "$(cat "$cache/.stamp" 2>/dev/null)" == "$stamp" ]]; then
  [[ -x "$cache/kubectl" ]] || ln -sf "$(command -v kubectl)" "$cache/kubectl" 2>/dev/null || true
  echo "$cache"
  exit 0
fi

command -v go >/dev/null || { echo "Go is needed to build kube-apiserver (https://go.dev/dl); or set KUBEBUILDER_ASSETS" >&2; exit 2; }
mkdir -p "$cache"
tmp="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "building kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION into $cache (first time: about 18 minutes)" >&2
cd "$here"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# Without these the server reports v0.0.0-master, and Helm refuses charts with a kubeVersion.
major="${K8S_VERSION#v}"; minor="${major#*.}"; major="${major%%.*}"; minor="${minor%%.*}"
version_flags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  version_flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  version_flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

go build -trimpath -ldflags="-s -w $version_flags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -trimpath -ldflags='-s -w' -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2
if ! kubectl version --client -o json 2>/dev/null | python3 -c 'import json,sys; v=json.load(sys.stdin)["clientVersion"]; sys.exit(0 if (int(v["major"]), int(v["minor"].rstrip("+"))) >= (1, 30) else 1)'; then
  echo "no kubectl >= 1.30 on PATH: building kubectl $K8S_VERSION" >&2
  go build -trimpath -ldflags="-s -w $version_flags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl >&2
else
  ln -sf "$(command -v kubectl)" "$tmp/kubectl"
fi
mv -f "$tmp"/kube-apiserver "$tmp"/etcd "$cache"/
mv -f "$tmp"/kubectl "$cache"/ 2>/dev/null || true
echo "$stamp" > "$cache/.stamp"
echo "$cache"
