#!/usr/bin/env bash
# buildah on the project's own image store: `hack/image/buildah.sh images`, `... from IMAGE`,
# `... run CONTAINER -- CMD`, `... push IMAGE docker-archive:/tmp/op.tar`, ...
#
# The store lives outside the clone (BULKTERM_IMAGE_CACHE, default
# ~/.cache/bulk-termination-operator/image) so the local base image survives across clones
# and CI runs; it uses the vfs driver (no overlay or fuse needed) and chroot isolation (no
# OCI runtime needed), which is what works as root on a plain Debian machine. Run state goes
# to /run, which a reboot clears as containers/storage expects.
set -euo pipefail

cache="${BULKTERM_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bulk-termination-operator/image}"
export BUILDAH_ISOLATION=chroot
exec buildah --root "$cache/storage" --runroot /run/bulk-termination-operator/buildah \
  --storage-driver vfs "$@"
