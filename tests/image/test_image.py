"""The Dockerfile builds, and its image runs ``bulkterm`` as the numeric non-root user.

``hack/image/build.sh`` builds the image with Debian's buildah from a local Debian base
(debootstrap) and a host-made wheelhouse, with no registry and no index reached from inside
the build. The first run on a machine installs buildah and makes the base (about 2 minutes in
all); later runs reuse the base and take about 30 s. Needs root: without it the tests fail
(they do not skip), since a skipped image test would pass CI with an image nobody built.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HACK = ROOT / "hack" / "image"
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
