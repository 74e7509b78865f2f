#!/usr/bin/env bash
# Build the operator image from the project's Dockerfile with Debian's buildah, on a machine
# with no container registry and no package index reachable from inside a build. Prints the
# image name (stdout); progress goes to stderr. Needs root (debootstrap, buildah's chroot).
#
#   1. buildah and debootstrap from apt, if missing.
#   2. A local stand-in for python:3.11-slim-bookworm: Debian bookworm (minbase) + python3 +
#      pip, made with debootstrap from the Debian mirror and imported into the project's
#      image store (hack/image/buildah.sh) the first time only (about 1 minute); later runs
#      reuse it. BASE_REVISION names it: bump it when the recipe below changes.
#      Its packages are pinned: hack/image/base-packages.<arch>.lock names every one at its
#      exact version, and a base whose packages differ in any way (the mirror moved on to a
#      newer point release, say) is refused before it is used, naming each package, the
#      version wanted and the version found (hack/image/base-packages.sh verify).
#      `build.sh --refresh-base-lock` makes a fresh rootfs, rewrites that lock from it and
#      stops: review the diff and commit it (docs/dependencies.md, "Supply chain").
#   3. The locked files of requirements/runtime.lock and requirements/build.lock, fetched by
#      the host's pip from PyPI into hack/image/wheelhouse (gitignored, removed afterwards)
#      with their hashes checked: binary wheels only, for CPython 3.11 on glibc 2.36 (the
#      base's), so nothing is compiled. The Dockerfile checks the hashes again on install.
#   4. `buildah bud` of ./Dockerfile with PYTHON_IMAGE=<local base>,
#      WHEELHOUSE=hack/image/wheelhouse and --pull=never, in a network namespace with no
#      interface but a loopback: the build itself can send no traffic at all.
#   5. The image's SBOM (CycloneDX JSON, written inside it by the Dockerfile's final stage:
#      /usr/share/doc/bulk-termination-operator/sbom.cdx.json) copied next to the build
#      output: build/image/bulk-termination-operator-<version>.cdx.json (path on stderr).
#
# Traffic: apt's sources (step 1, only when a tool is missing), the Debian mirror (step 2,
# first time only: BULKTERM_DEBIAN_MIRROR, default debootstrap's own) and the host pip's index
# (step 3). Nothing else.
set -euo pipefail

BASE_SUITE=bookworm
BASE_PYTHON=3.11    # bookworm's python3
BASE_GLIBC=2_36     # bookworm's libc6
BASE_PACKAGES=python3,python3-pip,passwd,ca-certificates
BASE_REVISION=3
SBOM_IN_IMAGE=/usr/share/doc/bulk-termination-operator/sbom.cdx.json

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${BULKTERM_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulk-termination-operator/image}"
export BULKTERM_IMAGE_CACHE="$cache"
mirror=(${BULKTERM_DEBIAN_MIRROR:+"$BULKTERM_DEBIAN_MIRROR"})
py="${PYTHON:-python3}"
arch="$(uname -m)"
bh() { "$here/buildah.sh" "$@"; }
log() { echo "image: $*" >&2; }
die() { echo "image: $*" >&2; exit 1; }

refresh=""
case "${1:-}" in
  "") ;;
  --refresh-base-lock) refresh=1 ;;
  *) echo "usage: hack/image/build.sh [--refresh-base-lock]" >&2; exit 2 ;;
esac

if [[ "$(id -u)" != 0 ]]; then
  echo "hack/image/build.sh needs root: debootstrap and buildah's chroot isolation (rootless buildah needs subuid/subgid set up, not done here)" >&2
  exit 2
fi

# 1. Tools.
if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
  command -v apt-get >/dev/null || { echo "buildah and debootstrap are missing and there is no apt-get to install them" >&2; exit 2; }
  log "installing buildah and debootstrap (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  # fuse-overlayfs and crun/runc (recommended) are not needed: vfs storage, chroot isolation.
  apt-get install -y -qq --no-install-recommends buildah debootstrap >&2
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9    # one build at a time per cache (and per clone: the wheelhouse is in the clone)

work="$(mktemp -d "$cache/.work.XXXXXX")"
wheelhouse="$root/hack/image/wheelhouse"
cleanup() { rm -rf "$work" "$wheelhouse"; }
trap cleanup EXIT

# 2. Local base image, its packages pinned by the lock of this architecture.
debarch="$(dpkg --print-architecture)"
base_lock="$here/base-packages.$debarch.lock"
rootfs="$work/rootfs"
bootstrap() {
  debootstrap --arch="$debarch" --variant=minbase --include="$BASE_PACKAGES" "$BASE_SUITE" \
    "$rootfs" "${mirror[@]}" >&2
}
if [[ -n "$refresh" ]]; then
  log "refreshing ${base_lock#"$root/"}: debootstrap of $BASE_SUITE with $BASE_PACKAGES ($debarch)"
  bootstrap
  old="$(grep -sv '^#' "$base_lock" || true)"
  "$here/base-packages.sh" write "$rootfs" "$base_lock" "$BASE_SUITE" "$BASE_PACKAGES"
  changes="$(diff <(echo "$old") <(grep -v '^#' "$base_lock") | sed -n 's/^</  -/p; s/^>/  +/p' || true)"
  log "wrote ${base_lock#"$root/"}: $(grep -cv '^#' "$base_lock") packages; ${changes:+changes (- old, + new):}${changes:-no change}"
  [[ -z "$changes" ]] || echo "$changes" >&2
  exit 0
fi
[[ -f "$base_lock" ]] \
  || die "no package lock for $debarch (${base_lock#"$root/"}): run \`hack/image/build.sh --refresh-base-lock\`, review and commit it"
for field in "suite:$BASE_SUITE" "include:$BASE_PACKAGES"; do
  [[ "$(sed -n "s/^# ${field%%:*}: //p" "$base_lock")" == "${field#*:}" ]] \
    || die "${base_lock#"$root/"} was made for another ${field%%:*} than build.sh's ${field#*:}: run \`hack/image/build.sh --refresh-base-lock\`, review and commit it"
done
key="$(printf '%s\n' "$BASE_SUITE" "$BASE_PACKAGES" "$BASE_REVISION" "$arch" "$(sha256sum < "$base_lock")" | sha256sum | cut -c1-12)"
base="localhost/bulk-termination-operator-base:$BASE_SUITE-$key"
if bh inspect --type image "$base" >/dev/null 2>&1; then
  log "base $base (cached; its packages were checked against ${base_lock#"$root/"} when it was made)"
else
  log "making base $base with debootstrap (first time only: about a minute)"
  bootstrap
  # Before anything uses or caches it: exactly the locked packages, or no base at all.
  "$here/base-packages.sh" verify "$rootfs" "$base_lock" 2>&1 | sed 's/^/image: /' >&2 \
    && log "base packages: exactly the $(grep -cv '^#' "$base_lock") of ${base_lock#"$root/"}" \
    || die "refusing this base. If the new versions are wanted (a Debian point release), run \`hack/image/build.sh --refresh-base-lock\`, review the diff of ${base_lock#"$root/"} and commit it; docs/dependencies.md, \"Supply chain\""
  # Like the python:*-slim images: pip may install system-wide (no PEP 668 marker), no apt
  # lists or caches, docs or locales; no host files that debootstrap copied in, and no device
  # nodes (an image's /dev is empty: the runtime provides it).
  rm -f "${rootfs:?}"/usr/lib/python3*/EXTERNALLY-MANAGED "${rootfs:?}"/etc/hostname "${rootfs:?}"/etc/resolv.conf
  rm -rf "${rootfs:?}"/dev/*
  rm -rf "${rootfs:?}"/var/lib/apt/lists/* "${rootfs:?}"/var/cache/apt/* "${rootfs:?}"/var/log/* \
    "${rootfs:?}"/usr/share/doc/* "${rootfs:?}"/usr/share/man/* "${rootfs:?}"/usr/share/info/* \
    "${rootfs:?}"/usr/share/locale/*
  ctr="$(bh from --pull=never scratch)"
  mnt="$(bh mount "$ctr")"
  cp -a "${rootfs:?}"/. "$mnt"/
  bh umount "$ctr" >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 --label "org.opencontainers.image.description=local stand-in for python:$BASE_PYTHON-slim-$BASE_SUITE" \
    "$ctr"
  bh commit --rm --quiet "$ctr" "$base" >/dev/null
  rm -rf "$rootfs"
  # Earlier revisions of the base.
  bh images --format '{{.Name}}:{{.Tag}}' | grep '^localhost/bulk-termination-operator-base:' \
    | grep -vxF "$base" | xargs -r "$here/buildah.sh" rmi >/dev/null 2>&1 || true
fi

# 3. Wheelhouse: the files the locks name (dependencies, pip and the build backend), as wheels
#    for the base. --require-hashes: a file whose hash the lock does not list is refused here.
locks=("$root/requirements/runtime.lock" "$root/requirements/build.lock")
version="$("$py" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$root/pyproject.toml")"
rm -rf "$wheelhouse"
mkdir -p "$wheelhouse"
log "fetching the locked wheels of ${locks[*]#"$root/"} for CPython $BASE_PYTHON on glibc ${BASE_GLIBC/_/.} ($arch)"
# Every manylinux tag the base's glibc accepts (older pips do not expand one into the rest).
platforms=()
for ((minor = ${BASE_GLIBC#2_}; minor >= 5; minor--)); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")
"$py" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --require-hashes \
  --dest "$wheelhouse" "${platforms[@]}" --python-version "$BASE_PYTHON" --implementation cp \
  --abi "cp${BASE_PYTHON/./}" "${locks[@]/#/-r}" >&2

# 4. The image.
image="localhost/bulk-termination-operator:$version"
log "building $image"
# No --layers: buildah's layer cache keys a RUN step by its text and parent, not by what a
# --mount=from brings in, so a cached final stage could outlive a changed builder stage.
# In a network namespace of its own (only a loopback, down): buildah's chroot isolation shares
# the host's network whatever --network says, so this is what keeps the build offline.
unshare --net "$here/buildah.sh" bud --pull=never --force-rm --layers=false \
  --build-arg PYTHON_IMAGE="$base" --build-arg WHEELHOUSE=hack/image/wheelhouse \
  --build-arg BULKTERM_COMMIT="$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)" \
  --tag "$image" --file "$root/Dockerfile" "$root" >&2
bh rmi --prune >/dev/null 2>&1 || true    # the previous build's image, now untagged

# 5. The SBOM the final stage wrote into the image, next to the build output too.
sbom="$root/build/image/bulk-termination-operator-$version.cdx.json"
mkdir -p "$(dirname "$sbom")"
ctr="$(bh from --pull=never "$image")"
mnt="$(bh mount "$ctr")"
cp "$mnt$SBOM_IN_IMAGE" "$sbom.tmp" && mv "$sbom.tmp" "$sbom" \
  || { bh rm "$ctr" >/dev/null; die "the image has no SBOM at $SBOM_IN_IMAGE"; }
bh rm "$ctr" >/dev/null
log "SBOM: $SBOM_IN_IMAGE in the image, and ${sbom#"$root/"}"
echo "$image"
