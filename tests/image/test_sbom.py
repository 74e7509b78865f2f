"""hack/image/sbom.py, the SBOM writer the Dockerfile's final stage runs, on a made-up root.

These run everywhere (no root, no buildah): they give the writer a file system with a dpkg
status file, os-release and Python distributions, and check what it writes against the
CycloneDX 1.5 schema and packageurl-python. ``test_image.py`` checks the SBOM of the real
image where the image is built.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .support import (
    SBOM_SCRIPT,
    lock_pins,
    of_type,
    purl_problems,
    schema_errors,
    sha256s,
)

STATUS = """\
Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u13
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1
Maintainer: Mark Brown <broonie@debian.org>
Description: compression library - runtime

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2026b-0+deb12u1
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Description: time zone and daylight-saving time data

Package: removed-but-configured
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
Maintainer: Someone <someone@example.org>
Description: gone, only its configuration files are left

Package: half
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0-1
Maintainer: Someone <someone@example.org>
Description: not on the file system as a whole
"""

OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
"""

SITE = "usr/local/lib/python3.11/site-packages"
WHEEL_BYTES = b"not really a zip, but hashed all the same"
LOCKED_HASHES = ["a" * 64, "b" * 64]


def dist(site: Path, name: str, version: str, *extra: str) -> None:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}", *extra]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(STATUS)
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text(OS_RELEASE)
    (root / "etc/debian_version").write_text("12.15\n")
    site = root / SITE
    dist(site, "bulk-termination-operator", "0.1.0", "Summary: the operator")
    dist(site, "Foo_Bar", "1.2", "License-Expression: Apache-2.0 AND MIT")
    dist(site, "baz", "2.0")
    dist(site, "unpinned", "3.0")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "foo_bar-1.2-py3-none-any.whl").write_bytes(WHEEL_BYTES)
    lock = tmp_path / "runtime.lock"
    lock.write_text(
        "# a hashed lock\n"
        "baz==2.0 \\\n"
        + "".join(f"    --hash=sha256:{h} \\\n" for h in LOCKED_HASHES[:-1])
        + f"    --hash=sha256:{LOCKED_HASHES[-1]}\n"
        "    # via bulk-termination-operator (pyproject.toml)\n"
        "foo-bar==1.2 \\\n"
        f"    --hash=sha256:{'c' * 64}\n"
    )
    return root


def write_sbom(root: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    tmp = root.parent
    proc = subprocess.run(
        [
            sys.executable,
            str(SBOM_SCRIPT),
            "--root",
            str(root),
            "--path",
            str(root / SITE),
            "--subject",
            "bulk-termination-operator",
            "--lock",
            str(tmp / "runtime.lock"),
            "--wheels",
            str(tmp / "wheels"),
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1787529600", **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_sbom_is_valid_cyclonedx_with_canonical_purls(rootfs: Path) -> None:
    document = write_sbom(rootfs)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.5"
    assert schema_errors(document) is None
    assert purl_problems(document) == []


def test_debian_packages_are_the_installed_ones_with_versions_and_purls(rootfs: Path) -> None:
    debs = of_type(write_sbom(rootfs), "deb")
    assert sorted(debs) == ["libc6", "tzdata", "zlib1g"], "config-files/half-installed listed"
    assert debs["zlib1g"]["version"] == "1:1.2.13.dfsg-1"
    assert debs["zlib1g"]["purl"] == (
        "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64&distro=debian-12"
    )
    assert debs["libc6"]["purl"] == (
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u13?arch=amd64&distro=debian-12"
    )
    assert debs["tzdata"]["purl"].endswith("?arch=all&distro=debian-12")
    assert debs["libc6"]["description"] == "GNU C Library: Shared libraries"
    assert {"name": "bulkterm:sbom:debian-source", "value": "glibc"} in debs["libc6"]["properties"]


def test_python_distributions_with_versions_purls_and_hashes(rootfs: Path) -> None:
    python = of_type(write_sbom(rootfs), "python")
    assert sorted(python) == ["baz", "bulk-termination-operator", "foo-bar", "unpinned"]
    foo = python["foo-bar"]
    assert (foo["name"], foo["version"], foo["purl"]) == ("Foo_Bar", "1.2", "pkg:pypi/foo-bar@1.2")
    assert foo["licenses"] == [{"expression": "Apache-2.0 AND MIT"}]
    # The wheel it came from is at hand: its own hash, not the lock's list.
    assert sha256s(foo) == {hashlib.sha256(WHEEL_BYTES).hexdigest()}
    assert "externalReferences" not in foo
    # No wheel, but pinned by the lock at this version: the files the lock accepted.
    (reference,) = python["baz"]["externalReferences"]
    assert reference["type"] == "distribution"
    assert reference["url"] == "https://pypi.org/project/baz/2.0/"
    assert [h["content"] for h in reference["hashes"]] == LOCKED_HASHES
    assert "hashes" not in python["baz"]
    # Neither: name, version and purl only.
    assert "hashes" not in python["unpinned"] and "externalReferences" not in python["unpinned"]
    location = {p["name"]: p["value"] for p in python["unpinned"]["properties"]}
    assert location["bulkterm:sbom:location"] == "/" + SITE


def test_the_image_and_its_operating_system(rootfs: Path) -> None:
    document = write_sbom(rootfs)
    assert document["metadata"]["component"] == {
        "type": "container",
        "bom-ref": "image",
        "name": "bulk-termination-operator",
        "version": "0.1.0",
    }
    system = document["components"][0]
    assert system["type"] == "operating-system"
    assert (system["name"], system["version"]) == ("debian", "12.15")
    (graph,) = document["dependencies"]
    assert graph["ref"] == "image"
    assert set(graph["dependsOn"]) == {c["bom-ref"] for c in document["components"]}


def test_same_input_same_sbom(rootfs: Path) -> None:
    """SOURCE_DATE_EPOCH fixes the timestamp; the serial number follows the contents."""
    first, second = write_sbom(rootfs), write_sbom(rootfs)
    assert first == second
    assert first["metadata"]["timestamp"] == "2026-08-24T00:00:00Z"
    (rootfs / SITE / "baz-2.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.4\nName: baz\nVersion: 2.1\n"
    )
    assert write_sbom(rootfs)["serialNumber"] != first["serialNumber"]


def test_writes_the_output_file(rootfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "share" / "doc" / "sbom.cdx.json"
    proc = run_bare(
        *("--root", str(rootfs), "--path", str(rootfs / SITE)),
        *("--subject", "bulk-termination-operator", "--output", str(out)),
    )
    assert proc.returncode == 0, proc.stderr
    assert schema_errors(json.loads(out.read_text())) is None


def run_bare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SBOM_SCRIPT), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_refuses_a_subject_that_is_not_installed(rootfs: Path) -> None:
    proc = run_bare("--root", str(rootfs), "--path", str(rootfs / SITE), "--subject", "nope")
    assert proc.returncode == 1
    assert "no Python distribution named 'nope'" in proc.stderr


def test_another_root_needs_its_python_folders(rootfs: Path) -> None:
    """Without --path it would list the distributions of the interpreter running it."""
    proc = run_bare("--root", str(rootfs), "--subject", "bulk-termination-operator")
    assert proc.returncode == 2
    assert "give the Python folders with --path" in proc.stderr


def test_the_writers_lock_reading_agrees_with_the_tests() -> None:
    """The writer's own reading of requirements/runtime.lock (the hashes it copies)."""
    spec = importlib.util.spec_from_file_location("image_sbom", SBOM_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lock = SBOM_SCRIPT.parents[2] / "requirements" / "runtime.lock"
    theirs = {name: (v, set(h)) for name, (v, h) in module.read_lock(lock).items()}
    assert theirs == lock_pins(lock)
    assert theirs and all(hashes for _, hashes in theirs.values())
