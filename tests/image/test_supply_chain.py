"""The image's inputs are pinned: the base image by digest, the local base's Debian packages by
hack/image/base-packages.<arch>.lock, which build.sh enforces (docs/dependencies.md, "Supply
chain"). These run everywhere: no root, no buildah; ``base-packages.sh`` is run on made-up dpkg
databases with the host's dpkg-query.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from .support import BASE_PACKAGES_SH, DOCKERFILE, HACK, ROOT

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
BUILD_SH = (HACK / "build.sh").read_text()


def build_setting(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", BUILD_SH, re.M)
    assert match, f"no {name}= in hack/image/build.sh"
    return match[1]


# --- the base image, by digest ----------------------------------------------------------


def unpinned_bases(dockerfile: str) -> list[str]:
    """Every FROM image (ARG defaults resolved) that is neither an earlier stage nor pinned
    by a sha256 digest."""
    text = re.sub(r"\\\n", " ", dockerfile)
    args: dict[str, str] = {}
    stages: set[str] = set()
    unpinned = []
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        keyword = words[0].upper()
        if keyword == "ARG" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            args.setdefault(name, value.strip("\"'"))
        elif keyword == "FROM":
            rest = [w for w in words[1:] if not w.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], ""), rest[0])
            if image not in stages and image != "scratch" and not DIGEST.search(image):
                unpinned.append(image or rest[0])
            if len(rest) == 3 and rest[1].upper() == "AS":
                stages.add(rest[2])
    return unpinned


def test_the_base_image_is_pinned_by_digest() -> None:
    text = DOCKERFILE.read_text()
    assert unpinned_bases(text) == [], "FROM images without @sha256:<digest>"
    arg = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert arg, "no ARG PYTHON_IMAGE= default in the Dockerfile"
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", arg[1]), (
        "the tag stays for readers, the digest decides"
    )


@pytest.mark.parametrize(
    ("dockerfile", "unpinned"),
    [
        ("ARG PYTHON_IMAGE=python:3.11-slim-bookworm\nFROM ${PYTHON_IMAGE} AS b\nFROM b\n", 1),
        ("FROM python:3.11-slim-bookworm AS b\nFROM b\n", 1),
        ("FROM --platform=linux/amd64 debian:bookworm@sha256:abc\n", 1),
        ("ARG I=python:3.11@sha256:" + "0" * 64 + "\nFROM $I AS b\nFROM b\nFROM scratch\n", 0),
    ],
)
def test_the_digest_check_catches_a_tag_alone(dockerfile: str, unpinned: int) -> None:
    assert len(unpinned_bases(dockerfile)) == unpinned


def test_renovate_keeps_the_digest_current() -> None:
    """Dependabot cannot update an ARG that FROM uses; Renovate's dockerfile manager can."""
    config = json.loads((ROOT / "renovate.json").read_text())
    assert config["enabledManagers"] == ["dockerfile"], "the Python locks are `make lock`'s"
    assert config["pinDigests"] is True
    python_rules = [r for r in config["packageRules"] if r.get("matchPackageNames") == ["python"]]
    assert any(
        r.get("enabled") is False and "digest" not in r["matchUpdateTypes"] for r in python_rules
    ), "tag moves (3.12, trixie) are made by hand"


# --- the local base's Debian packages ---------------------------------------------------


def base_lock() -> Path:
    debarch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return HACK / f"base-packages.{debarch}.lock"


def test_the_base_package_lock_matches_build_sh() -> None:
    lock = base_lock()
    assert lock.is_file(), f"no {lock.name}: hack/image/build.sh --refresh-base-lock"
    text = lock.read_text()
    headers = dict(re.findall(r"^# (\w+): (.*)$", text, re.M))
    assert headers["suite"] == build_setting("BASE_SUITE")
    assert headers["include"] == build_setting("BASE_PACKAGES")
    entries = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.+-]+=[0-9][A-Za-z0-9.+~:-]*", e) for e in entries)
    names = [e.split("=")[0] for e in entries]
    assert names == sorted(names) and len(names) == len(set(names))
    for wanted in build_setting("BASE_PACKAGES").split(","):
        assert wanted in names, f"{wanted} (build.sh's BASE_PACKAGES) is not in {lock.name}"


def dpkg_status(root: Path, packages: dict[str, str], arch: str = "amd64") -> None:
    """A dpkg database in ``root`` with ``packages`` (name -> version) installed."""
    admin = root / "var" / "lib" / "dpkg"
    admin.mkdir(parents=True, exist_ok=True)
    paragraphs = [
        f"Package: {name}\nStatus: install ok installed\nPriority: optional\n"
        f"Architecture: {arch}\nVersion: {version}\nMaintainer: M <m@example.org>\n"
        f"Description: {name}\n"
        for name, version in {"dpkg": "1.21.22", **packages}.items()
    ]
    paragraphs.append(
        "Package: purged\nStatus: deinstall ok config-files\nArchitecture: amd64\n"
        "Version: 9\nMaintainer: M <m@example.org>\nDescription: only its conffiles\n"
    )
    (admin / "status").write_text("\n".join(paragraphs))


def base_packages(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(BASE_PACKAGES_SH), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def locked(tmp_path: Path) -> tuple[Path, Path]:
    """A root with three packages, and the lock written from it."""
    root = tmp_path / "rootfs"
    dpkg_status(root, {"libc6": "2.36-9+deb12u13", "zlib1g": "1:1.2.13.dfsg-1", "gzip": "1.12-1"})
    lists = root / "var" / "lib" / "apt" / "lists"
    lists.mkdir(parents=True)
    (lists / "deb.debian.org_debian_dists_bookworm_InRelease").write_text(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nVersion: 12.15\n"
        "Codename: bookworm\nDate: Sat, 11 Jul 2026 10:16:37 UTC\nSHA256:\n 0 1 main/x\n"
    )
    lock = tmp_path / "base-packages.amd64.lock"
    proc = base_packages("write", root, lock, "bookworm", "python3,passwd")
    assert proc.returncode == 0, proc.stderr
    return root, lock


def test_write_records_every_installed_package(locked: tuple[Path, Path]) -> None:
    _, lock = locked
    text = lock.read_text()
    assert "# suite: bookworm\n# architecture: amd64\n# include: python3,passwd\n" in text
    assert "# release: Debian 12.15 (bookworm), Release file dated Sat, 11 Jul 2026" in text
    assert [line for line in text.splitlines() if not line.startswith("#")] == [
        "dpkg=1.21.22",
        "gzip=1.12-1",
        "libc6=2.36-9+deb12u13",
        "zlib1g=1:1.2.13.dfsg-1",
    ]


def test_verify_accepts_exactly_the_locked_packages(locked: tuple[Path, Path]) -> None:
    proc = base_packages("verify", *locked)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_verify_names_each_difference(locked: tuple[Path, Path]) -> None:
    """A newer version, a package gone and one more: each named, with wanted and found."""
    root, lock = locked
    dpkg_status(root, {"libc6": "2.36-9+deb12u14", "zlib1g": "1:1.2.13.dfsg-1", "curl": "7.88"})
    proc = base_packages("verify", root, lock)
    assert proc.returncode == 1
    assert "the base's Debian packages differ from" in proc.stderr
    assert "  libc6: wanted 2.36-9+deb12u13, found 2.36-9+deb12u14\n" in proc.stderr
    assert "  gzip: wanted 1.12-1, found none (not installed)\n" in proc.stderr
    assert "  curl: not in the lock, found 7.88\n" in proc.stderr
    assert "zlib1g" not in proc.stderr and "dpkg:" not in proc.stderr
    assert "the lock was made from:  Debian 12.15 (bookworm)" in proc.stderr


def test_verify_refuses_another_architecture(locked: tuple[Path, Path]) -> None:
    root, lock = locked
    dpkg_status(root, {"libc6": "2.36-9+deb12u13", "zlib1g": "1:1.2.13.dfsg-1"}, arch="arm64")
    proc = base_packages("verify", root, lock)
    assert proc.returncode == 1
    assert "the base is for arm64" in proc.stderr


def test_build_sh_verifies_before_it_uses_a_base() -> None:
    """The check sits between debootstrap and the import into the image store."""
    made = BUILD_SH.index('log "making base')
    verify = BUILD_SH.index('base-packages.sh" verify', made)
    imported = BUILD_SH.index("bh from --pull=never scratch", made)
    assert made < verify < imported
    assert "refusing this base" in BUILD_SH[verify:imported]
