"""The Dockerfile builds, and its image runs ``bulkterm`` as the numeric non-root user.

``hack/image/build.sh`` builds the image with Debian's buildah from a local Debian base
(debootstrap, its packages exactly hack/image/base-packages.<arch>.lock) and a host-made
wheelhouse, with no registry and no index reached from inside the build. The first run on a
machine installs buildah and makes the base (about 2 minutes in all); later runs reuse the base
and take about 30 s. Needs root: without it the tests fail (they do not skip), since a skipped
image test would pass CI with an image nobody built. The image's SBOM is checked here too;
test_sbom.py checks its writer everywhere, on a made-up root.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest

from .support import (
    HACK,
    ROOT,
    SBOM_IN_IMAGE,
    lock_pins,
    normalize,
    of_type,
    purl_problems,
    schema_errors,
    sha256s,
)

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
USER = "65532:65532"

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]


def buildah(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The project's buildah (its own store), in a network namespace with no way out."""
    return subprocess.run(
        ["unshare", "--net", str(HACK / "buildah.sh"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def image() -> str:
    if os.geteuid() != 0:
        pytest.fail(
            "the image test needs root (debootstrap, buildah's chroot isolation, apt-get to "
            "install them); run as root, or deselect it with -m 'not image'",
            pytrace=False,
        )
    proc = subprocess.run(
        ["bash", str(HACK / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1500,
        env={**os.environ, "PYTHON": sys.executable},
    )
    if proc.returncode != 0:
        pytest.fail(
            f"hack/image/build.sh failed ({proc.returncode}):\n{proc.stderr[-6000:]}",
            pytrace=False,
        )
    name = proc.stdout.strip().splitlines()[-1]
    assert name == f"localhost/bulk-termination-operator:{VERSION}"
    return name


@pytest.fixture(scope="module")
def config(image: str) -> dict[str, Any]:
    proc = buildah("inspect", "--type", "image", image)
    assert proc.returncode == 0, proc.stderr
    cfg: dict[str, Any] = json.loads(proc.stdout)["OCIv1"]["config"]
    return cfg


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    proc = buildah("from", "--pull=never", image)
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.strip().splitlines()[-1]
    try:
        yield name
    finally:
        buildah("rm", name)


def run(container: str, *cmd: str) -> subprocess.CompletedProcess[str]:
    """``cmd`` in the container as the image's own USER (no --user: the config must say it)."""
    return buildah("run", container, "--", *cmd)


def test_config_runs_the_operator_as_numeric_non_root_user(config: dict[str, Any]) -> None:
    assert config.get("Entrypoint") == ["bulkterm", "operator"]
    assert config.get("User") == USER
    assert config.get("WorkingDir") == "/tmp"
    assert set(config.get("ExposedPorts", {})) == {"8080/tcp", "9090/tcp"}


def test_the_image_names_the_commit_it_was_built_from(config: dict[str, Any]) -> None:
    """For ``bulkterm_build_info{commit}``: build.sh passes ``git rev-parse HEAD``."""
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    env = dict(item.split("=", 1) for item in config.get("Env", []))
    assert env.get("BULKTERM_COMMIT") == (head or "unknown")


def test_bulkterm_version_as_numeric_non_root_user(container: str) -> None:
    ids = run(container, "sh", "-c", 'echo "$(id -u):$(id -g)"')
    assert ids.returncode == 0, ids.stderr
    assert ids.stdout.strip() == USER
    proc = run(container, "bulkterm", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"bulkterm, version {VERSION}"


def test_operator_command_loads(container: str) -> None:
    """The entrypoint's own subcommand imports kopf, kubernetes & co. in the image."""
    proc = run(container, "bulkterm", "operator", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "Usage: bulkterm operator" in proc.stdout


def test_no_build_leftovers(container: str) -> None:
    proc = run(container, "sh", "-c", "ls -d /wheels /src /context /root/.cache 2>/dev/null")
    assert proc.stdout.strip() == "", f"left in the image: {proc.stdout.split()}"


def test_the_image_holds_exactly_the_runtime_lock(container: str) -> None:
    """Every package of requirements/runtime.lock at its locked version, and nothing else but
    the project and the base's own installers: the Dockerfile installs from the lock only."""
    locked = {}
    for line in (ROOT / "requirements" / "runtime.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split(" ")[0].split("==")
            locked[name.lower().replace("_", "-")] = version
    proc = run(container, "python3", "-m", "pip", "list", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(proc.stdout)}
    assert {name: installed.get(name) for name in locked} == locked
    extra = set(installed) - set(locked) - {"bulk-termination-operator"}
    assert extra <= {"pip", "setuptools", "wheel"}, f"not from the lock: {sorted(extra)}"


# --- supply chain: the base's packages and the SBOM -------------------------------------


def installed_debs(container: str) -> dict[str, str]:
    proc = run(
        container,
        "dpkg-query",
        "--show",
        "--showformat=${db:Status-Status} ${Package}=${Version}\n",
    )
    assert proc.returncode == 0, proc.stderr
    pairs = (
        line.split()[1].split("=", 1)
        for line in proc.stdout.splitlines()
        if line.startswith("installed ")
    )
    return dict(pairs)


def test_the_base_holds_exactly_the_locked_debian_packages(container: str) -> None:
    """build.sh checked the base against the lock when it made it; the image still holds it."""
    debarch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=True
    ).stdout.strip()
    lock = (HACK / f"base-packages.{debarch}.lock").read_text().splitlines()
    locked = dict(line.split("=", 1) for line in lock if not line.startswith("#"))
    assert installed_debs(container) == locked


@pytest.fixture(scope="module")
def sbom(container: str) -> dict[str, Any]:
    proc = run(container, "cat", SBOM_IN_IMAGE)
    assert proc.returncode == 0, f"no SBOM at {SBOM_IN_IMAGE}: {proc.stderr}"
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def test_sbom_is_valid_cyclonedx_with_canonical_purls(sbom: dict[str, Any]) -> None:
    assert schema_errors(sbom) is None
    assert purl_problems(sbom) == []
    assert sbom["metadata"]["component"]["name"] == "bulk-termination-operator"
    assert sbom["metadata"]["component"]["version"] == VERSION


def test_sbom_lists_every_debian_package_at_its_version(
    container: str, sbom: dict[str, Any]
) -> None:
    debs = {name: c["version"] for name, c in of_type(sbom, "deb").items()}
    assert debs == installed_debs(container)


def test_sbom_lists_the_runtime_lock_with_the_hash_of_each_wheel_installed(
    sbom: dict[str, Any],
) -> None:
    """Every locked distribution at its version, with the sha256 of the very wheel installed,
    which is one the lock accepted; our own with the hash of the wheel the builder made."""
    python = of_type(sbom, "python")
    for name, (version, hashes) in lock_pins(ROOT / "requirements" / "runtime.lock").items():
        assert name in python, f"{name} missing from the SBOM"
        assert python[name]["version"] == version
        installed = sha256s(python[name])
        assert len(installed) == 1, f"{name}: not one wheel hash but {installed}"
        assert installed <= hashes, f"{name}: {installed} is not a hash runtime.lock accepts"
    ours = python[normalize("bulk-termination-operator")]
    assert ours["version"] == VERSION and len(sha256s(ours)) == 1


def test_build_sh_leaves_the_same_sbom_next_to_its_output(sbom: dict[str, Any]) -> None:
    copy = ROOT / "build" / "image" / f"bulk-termination-operator-{VERSION}.cdx.json"
    assert json.loads(copy.read_text()) == sbom
