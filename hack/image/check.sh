#!/usr/bin/env bash
# Smoke-check an image built by build.sh (default: the project's current version): its
# config says `bulkterm operator` as 65532:65532, and a container of it, run as the image's
# own user (no --user), is that numeric user and answers `bulkterm --version`, and the image
# holds its SBOM (CycloneDX JSON, written by the Dockerfile's final stage). Runs in a network
# namespace of its own (no traffic). Exit status non-zero on any mismatch.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$here/../../pyproject.toml" | head -n1)"
image="${1:-localhost/bulk-termination-operator:$version}"
bh() { "$here/buildah.sh" "$@"; }

entrypoint="$(bh inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$image")"
user="$(bh inspect --type image --format '{{.OCIv1.Config.User}}' "$image")"
ctr="$(bh from --pull=never "$image")"
trap 'bh rm "$ctr" >/dev/null' EXIT
uid="$(unshare --net "$here/buildah.sh" run "$ctr" -- id -u)"
gid="$(unshare --net "$here/buildah.sh" run "$ctr" -- id -g)"
answer="$(unshare --net "$here/buildah.sh" run "$ctr" -- bulkterm --version)"
sbom_path=/usr/share/doc/bulk-termination-operator/sbom.cdx.json
sbom="$(unshare --net "$here/buildah.sh" run "$ctr" -- python3 -c '
import collections, json, sys
bom = json.load(open(sys.argv[1]))
kinds = collections.Counter(
    p["value"] for c in bom["components"] for p in c.get("properties", [])
    if p["name"] == "bulkterm:sbom:package-type")
print(bom["bomFormat"], bom["specVersion"] + ":", kinds["deb"], "Debian packages,",
      kinds["python"], "Python distributions")' "$sbom_path" 2>&1)" || sbom="missing or unreadable: $sbom"

echo "image:      $image ($(bh images --format '{{.Size}}' "$image"))"
echo "entrypoint: $entrypoint"
echo "user:       $user"
echo "runs as:    uid=$uid gid=$gid"
echo "version:    $answer"
echo "sbom:       $sbom_path: $sbom"
[[ "$entrypoint" == "[bulkterm operator]" && "$user" == "65532:65532" ]] || { echo "unexpected image config" >&2; exit 1; }
[[ "$uid" == 65532 && "$gid" == 65532 ]] || { echo "the container does not run as 65532:65532" >&2; exit 1; }
[[ "$answer" == "bulkterm, version $version" ]] || { echo "unexpected version answer" >&2; exit 1; }
[[ "$sbom" == "CycloneDX 1.5: "* ]] || { echo "no valid SBOM in the image" >&2; exit 1; }
echo "ok"
