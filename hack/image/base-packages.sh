#!/usr/bin/env bash
# The Debian packages of the local stand-in base (hack/image/build.sh), pinned: a checked-in
# lock, hack/image/base-packages.<arch>.lock, names every package of the base (those the recipe
# asks for and everything debootstrap brings with them) as `name=version`, and build.sh checks
# each base it makes against it before using it.
#
#   base-packages.sh verify ROOTFS LOCK
#       exit 0 when the packages dpkg has installed in ROOTFS are exactly LOCK's: the same
#       names at the same versions, for the same architecture. Else one line per difference on
#       stderr (package, wanted, found) and exit 1.
#   base-packages.sh write ROOTFS LOCK SUITE INCLUDE
#       (re)write LOCK from ROOTFS (`hack/image/build.sh --refresh-base-lock` does this).
#
# It reads ROOTFS/var/lib/dpkg with the host's dpkg-query (--admindir): nothing runs inside
# ROOTFS, and no root is needed for these two.
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2; exit 2; }

# name=version of each package dpkg has "installed" in $1 (not config-files, not half-installed).
installed() {
  dpkg-query --admindir="$1/var/lib/dpkg" --show \
    --showformat='${db:Status-Status} ${Package}=${Version}\n' \
    | awk '$1 == "installed" { print $2 }' | LC_ALL=C sort -t= -k1,1
}

architecture() {
  dpkg-query --admindir="$1/var/lib/dpkg" --show --showformat='${Architecture}' dpkg
}

# The Debian release the mirror served (debootstrap leaves its Release file in apt's lists).
release() {
  local file
  for file in "$1"/var/lib/apt/lists/*_InRelease "$1"/var/lib/apt/lists/*_Release; do
    [[ -f "$file" ]] || continue
    field() { sed -n "s/^$1: //p" "$file" | head -n1; }
    echo "$(field Origin) $(field Version) ($(field Codename)), Release file dated $(field Date)"
    return
  done
  echo "unknown (no Release file in $1/var/lib/apt/lists)"
}

header() { sed -n "s/^# $2: //p" "$1" | head -n1; }

verify() {
  local rootfs="$1" lock="$2"
  [[ -f "$lock" ]] || { echo "no package lock $lock" >&2; return 1; }
  local wanted_arch found_arch
  wanted_arch="$(header "$lock" architecture)"
  found_arch="$(architecture "$rootfs")"
  if [[ "$wanted_arch" != "$found_arch" ]]; then
    echo "the base is for $found_arch, $lock for ${wanted_arch:-no architecture}" >&2
    return 1
  fi
  # name TAB version of both sides, joined on the name: every difference, each way.
  local diffs
  diffs="$(join -t $'\t' -a1 -a2 -e '' -o '0,1.2,2.2' \
    <(grep -v '^#' "$lock" | grep . | sed 's/=/\t/' | LC_ALL=C sort -t $'\t' -k1,1) \
    <(installed "$rootfs" | sed 's/=/\t/' | LC_ALL=C sort -t $'\t' -k1,1) \
    | awk -F'\t' '$2 != $3 {
        if ($2 == "") printf "  %s: not in the lock, found %s\n", $1, $3
        else if ($3 == "") printf "  %s: wanted %s, found none (not installed)\n", $1, $2
        else printf "  %s: wanted %s, found %s\n", $1, $2, $3 }')"
  if [[ -n "$diffs" ]]; then
    {
      echo "the base's Debian packages differ from $lock:"
      echo "$diffs"
      echo "the lock was made from:  $(header "$lock" release)"
      echo "this base was made from: $(release "$rootfs")"
    } >&2
    return 1
  fi
}

write() {
  local rootfs="$1" lock="$2" suite="$3" include="$4" tmp
  tmp="$(mktemp "$lock.XXXXXX")"
  {
    echo "# $(basename "$lock"): the Debian packages of the local stand-in base that"
    echo "# hack/image/build.sh makes with debootstrap, each at the exact version it must have."
    echo "# build.sh refuses a base whose installed packages differ from these in any way."
    echo "# Written by \`hack/image/build.sh --refresh-base-lock\` (root; reaches the Debian mirror):"
    echo "# do not edit by hand; review the diff and commit it (docs/dependencies.md)."
    echo "# suite: $suite"
    echo "# architecture: $(architecture "$rootfs")"
    echo "# include: $include"
    echo "# release: $(release "$rootfs")"
    installed "$rootfs"
  } > "$tmp"
  chmod 644 "$tmp"
  mv "$tmp" "$lock"
}

case "${1:-}" in
  verify) [[ $# == 3 ]] || usage; verify "$2" "$3" ;;
  write) [[ $# == 5 ]] || usage; write "$2" "$3" "$4" "$5" ;;
  *) usage ;;
esac
