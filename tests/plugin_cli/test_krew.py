"""``kubectl bulkterm`` as krew installs it: the archives and manifest of hack/krew/build.py
(``make plugin-archive``), checked by the real krew and run by the real kubectl.

krew and its manifest validator are built from the Go module sigs.k8s.io/krew
(hack/krew/krew.sh; cached outside the clone); without Go, or when the module cannot be
fetched, the krew tests skip and say why. The archives are built once per test run (one
build shared by all pytest-xdist workers; the locked wheels are downloaded once per machine
and cached) into a temporary folder, never into dist/. krew installs from the local archive
(``--archive``) into a temporary KREW_ROOT, and it and the plugin run with no network (a
network namespace of their own as root, else proxies that lead nowhere).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.kube.client import KUBECTL
from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]
KREW_SCRIPT = ROOT / "hack" / "krew" / "krew.sh"
COMMITTED = ROOT / "plugins" / "krew" / "bulkterm.yaml"
SMALL = ROOT / "examples" / "small.yaml"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# Cold: about 4 minutes (the locked wheels of every platform are downloaded, krew is built);
# warm: about 50 s on 2 cores, most of it the build and the plugin's first run.
pytestmark = pytest.mark.timeout(900)


#: hack/krew/build.py: what the archives must be, said once.
build = load_script("hack/krew/build.py", "krew_build")


@dataclass(frozen=True)
class Built:
    manifest: Path
    archives: dict[str, Path]  # platform key (linux/amd64) -> archive


def _shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder all xdist workers of this run share (their base temps' parent), else this
    session's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """Every platform's archive and their manifest, as ``make plugin-archive`` writes them."""
    if importlib.util.find_spec("pex") is None:
        pytest.fail(
            "pex is not installed: it belongs in the test extra (`make install`); "
            "until then `.venv/bin/pip install pex`",
            pytrace=False,
        )
    shared = _shared_folder(tmp_path_factory)
    out = shared / "krew-archives"
    manifest = out / "bulkterm.yaml"
    with (shared / "krew-archives.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker builds, the others wait and reuse
        if not manifest.exists():
            result = subprocess.run(
                [sys.executable, str(ROOT / "hack" / "krew" / "build.py"), "--out", str(out),
                 "--manifest", str(manifest)],
                capture_output=True, text=True, timeout=840,
            )  # fmt: skip
            if result.returncode != 0:
                shutil.rmtree(out, ignore_errors=True)
                pytest.fail(f"hack/krew/build.py failed:\n{result.stderr[-6000:]}", pytrace=False)
    version = PROJECT["version"]
    archives = {key: out / build.archive_name(version, p) for key, p in build.PLATFORMS.items()}
    return Built(manifest, archives)


@pytest.fixture(scope="session")
def krew() -> Path:
    """The folder with ``kubectl-krew`` and ``validate-krew-manifest``."""
    result = subprocess.run(["bash", str(KREW_SCRIPT)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.skip(
            f"krew could not be built (hack/krew/krew.sh exit {result.returncode}): "
            f"{result.stderr.strip()[-2000:]}"
        )
    return Path(result.stdout.strip().splitlines()[-1])


def offline(
    command: list[str], env: dict[str, str], **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run with no way out: a network namespace of its own (root), else dead-end proxies."""
    if os.geteuid() == 0 and shutil.which("unshare"):
        command = ["unshare", "--net", *command]
    else:
        dead_end = "http://127.0.0.1:9"
        env = {**env, "HTTPS_PROXY": dead_end, "HTTP_PROXY": dead_end, "NO_PROXY": ""}
    return subprocess.run(
        command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL,
        timeout=120, **kwargs,
    )  # fmt: skip


@dataclass(frozen=True)
class Home:
    """A user's machine: its own HOME, KREW_ROOT and PEX_ROOT, and a PATH with a real
    Python, krew as kubectl's plugin, and krew's bin folder."""

    root: Path
    krew: Path

    @property
    def krew_root(self) -> Path:
        return self.root / "krew"

    def env(self, **extra: str) -> dict[str, str]:
        path = [self.krew_root / "bin", self.krew, Path(sys.base_prefix) / "bin"]
        return {
            "HOME": str(self.root / "home"),
            "PATH": os.pathsep.join([*map(str, path), "/usr/bin", "/bin"]),
            "KREW_ROOT": str(self.krew_root),
            "KREW_NO_UPGRADE_CHECK": "1",
            "PEX_ROOT": str(self.root / "pex"),
            "LANG": "C.UTF-8",
            **extra,
        }

    def kubectl(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return offline([KUBECTL, *args], self.env(**extra))


def host_platform() -> str:
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
    return f"{platform.system().lower()}/{machine.get(platform.machine().lower(), '?')}"


def new_home(tmp: Path, krew: Path) -> Home:
    home = Home(tmp, krew)
    (tmp / "home").mkdir(parents=True)
    return home


@pytest.fixture(scope="session")
def installed(built: Built, krew: Path, tmp_path_factory: pytest.TempPathFactory) -> Home:
    """This machine's archive, installed by ``kubectl krew install --manifest --archive``,
    once for all workers (the plugin's first run then unpacks its wheels once, too)."""
    key = host_platform()
    if key not in built.archives:
        pytest.skip(f"no archive is built for this machine's platform ({key})")
    shared = _shared_folder(tmp_path_factory)
    home = Home(shared / "krew-user", krew)
    with (shared / "krew-user.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home.krew_root / "receipts" / "bulkterm.yaml").exists():
            shutil.rmtree(home.root, ignore_errors=True)
            (home.root / "home").mkdir(parents=True)
            result = home.kubectl(
                "krew", "install", f"--manifest={built.manifest}",
                f"--archive={built.archives[key]}",
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
    return home


def find_cpython(minor: int) -> Path | None:
    """A real CPython 3.<minor> here (on the PATH or pyenv's), by the path it runs as."""
    candidates = [shutil.which(f"python3.{minor}")]
    candidates += map(str, sorted(Path.home().glob(f".pyenv/versions/3.{minor}.*/bin/python3")))
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print(sys.implementation.name, *sys.version_info[:2], "
             "sys.executable)"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        fields = probe.stdout.split()
        if probe.returncode == 0 and fields[:3] == ["cpython", "3", str(minor)]:
            return Path(fields[3])
    return None


# -- the manifest -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["built", "committed"])
def test_the_manifest_passes_krews_own_validator(
    built: Built, krew: Path, which: str, tmp_path: Path
) -> None:
    manifest = built.manifest if which == "built" else COMMITTED
    # -skip-install: the validator would download each platform's uri, a release not yet made;
    # the offline install below is that check, with the archive at hand.
    result = offline(
        [str(krew / "validate-krew-manifest"), "-manifest", str(manifest), "-skip-install"],
        {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert "structural validation OK" in result.stderr


def test_the_committed_manifest_is_the_built_one_but_for_the_digests(built: Built) -> None:
    """The sha256 depend on every byte of the sources; all else must be what build.py writes
    today, so a change of version, text or platforms shows up here until
    `make plugin-archive` is run."""

    def without_digests(path: Path) -> dict[str, Any]:
        manifest: dict[str, Any] = yaml.safe_load(path.read_text())
        for entry in manifest["spec"]["platforms"]:
            assert len(entry.pop("sha256")) == 64
        return manifest

    assert without_digests(COMMITTED) == without_digests(built.manifest)


def test_the_manifest_names_the_projects_version_home_and_release_assets(built: Built) -> None:
    manifest = yaml.safe_load(built.manifest.read_text())
    spec = manifest["spec"]
    version = PROJECT["version"]
    assert manifest["metadata"]["name"] == "bulkterm"
    assert spec["version"] == f"v{version}"
    assert spec["homepage"] == build.HOMEPAGE
    release = f"{build.HOMEPAGE}/releases/download/v{version}/"
    for entry in spec["platforms"]:
        labels = entry["selector"]["matchLabels"]
        name = f"kubectl-bulkterm_v{version}_{labels['os']}_{labels['arch']}.tar.gz"
        assert entry["uri"] == release + name
        assert entry["bin"] == "kubectl-bulkterm"
        assert entry["sha256"] == build.sha256_of(
            built.archives[f"{labels['os']}/{labels['arch']}"]
        )
    floor = PROJECT["requires-python"].removeprefix(">=")
    assert f"it needs CPython {floor} to " in spec["caveats"]


# -- the archives -------------------------------------------------------------------------


def test_each_archive_holds_the_executable_and_nothing_else(built: Built) -> None:
    license_file = build.license_file()
    for archive in built.archives.values():
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers()}
            expected = {"kubectl-bulkterm"} | ({license_file.name} if license_file else set())
            assert set(members) == expected, archive.name
            executable = members["kubectl-bulkterm"]
            assert executable.isfile() and executable.mode == 0o755
            head = tar.extractfile(executable)
            assert head is not None and head.read(10) == b"#!/bin/sh\n"


def test_each_archive_carries_native_code_only_for_its_platform(built: Built) -> None:
    for key, archive in built.archives.items():
        target = build.PLATFORMS[key]
        libraries = build.native_code(archive)
        assert libraries, archive.name
        assert {lib.os for lib in libraries} == {target.os}, archive.name
        # universal2 libraries (macOS) hold other CPUs beside this one.
        assert all(target.machine in lib.cpus for lib in libraries), archive.name


def test_each_archive_has_only_locked_wheels_and_one_for_every_pin_and_cpython(
    built: Built,
) -> None:
    pins = build.read_lock()
    own = f"bulk_termination_operator-{PROJECT['version']}-py3-none-any.whl"
    for key, archive in built.archives.items():
        wheels = build.pex_wheels(build.pex_of(archive))
        assert own in wheels, archive.name
        del wheels[own]
        assert build.unlocked_wheels(pins, wheels) == [], archive.name
        assert build.coverage_gaps(build.PLATFORMS[key], pins, list(wheels)) == [], archive.name


# -- krew installs it; kubectl runs it ------------------------------------------------------


def test_krew_installs_the_plugin_from_the_archive_with_no_network(installed: Home) -> None:
    bin_link = installed.krew_root / "bin" / "kubectl-bulkterm"
    target = (
        installed.krew_root / "store" / "bulkterm" / f"v{PROJECT['version']}" / "kubectl-bulkterm"
    )
    assert bin_link.is_symlink() and bin_link.resolve() == target
    assert os.access(target, os.X_OK)
    receipt = yaml.safe_load((installed.krew_root / "receipts" / "bulkterm.yaml").read_text())
    assert receipt["spec"]["version"] == f"v{PROJECT['version']}"


def test_krew_refuses_an_archive_whose_sha256_is_not_the_manifests(
    built: Built, krew: Path, tmp_path: Path
) -> None:
    key = host_platform()
    if key not in built.archives:
        pytest.skip(f"no archive is built for this machine's platform ({key})")
    manifest = yaml.safe_load(built.manifest.read_text())
    for entry in manifest["spec"]["platforms"]:
        entry["sha256"] = "0" * 64
    tampered = tmp_path / "bulkterm.yaml"
    tampered.write_text(yaml.safe_dump(manifest))
    home = new_home(tmp_path / "user", krew)
    result = home.kubectl(
        "krew", "install", f"--manifest={tampered}", f"--archive={built.archives[key]}"
    )
    assert result.returncode != 0
    assert "checksum does not match" in result.stderr
    assert not (home.krew_root / "bin" / "kubectl-bulkterm").exists()


def test_kubectl_runs_the_installed_plugin(installed: Home) -> None:
    result = installed.kubectl("bulkterm", "--help")
    assert result.returncode == 0, result.stderr
    assert "kubectl bulkterm: read and steer BulkTerminations in a cluster." in result.stdout
    for command in ("status", "suspend", "resume", "plan", "approve", "split"):
        assert f"\n  {command} " in result.stdout
    version = installed.kubectl("bulkterm", "--version")
    assert version.stdout == f"kubectl-bulkterm, version {PROJECT['version']}\n"


def test_the_installed_plugin_splits_a_manifest_with_no_cluster(installed: Home) -> None:
    result = installed.kubectl("bulkterm", "split", "-f", str(SMALL), "--max-targets", "1")
    assert result.returncode == 0, result.stderr
    parts = list(yaml.safe_load_all(result.stdout))
    assert [p["metadata"]["name"] for p in parts] == [
        f"stop-two-deployments-{n}" for n in (1, 2, 3)
    ]
    assert parts[2]["spec"]["executions"] == {
        "targetStatus": "DELETED",
        "ids": ["e2a2a329bfdd4a696"],
    }
    assert "stop-two-deployments: 3 targets in 3 BulkTermination(s)" in result.stderr


@pytest.mark.parametrize("minor", [minor for _, minor in build.PYTHONS])
def test_the_installed_plugin_runs_on_each_cpython_it_carries_wheels_for(
    installed: Home, minor: int
) -> None:
    python = find_cpython(minor)
    if python is None:
        pytest.skip(f"no CPython 3.{minor} on this machine")
    result = installed.kubectl("bulkterm", "--version", PEX_PYTHON=str(python))
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"kubectl-bulkterm, version {PROJECT['version']}\n"


def test_a_python_older_than_requires_python_is_refused_with_the_reason(installed: Home) -> None:
    floor = build.PYTHONS[0]
    python = find_cpython(floor[1] - 1)
    if python is None:
        pytest.skip(f"no CPython 3.{floor[1] - 1} on this machine")
    result = installed.kubectl("bulkterm", "--version", PEX_PYTHON=str(python))
    assert result.returncode != 0
    assert f"python requirement of {PROJECT['requires-python']}" in result.stderr
