"""Package ``kubectl bulkterm`` for krew: one archive per platform, and the manifest naming them.

``make plugin-archive`` (or ``.venv/bin/python hack/krew/build.py``) writes
``dist/krew/kubectl-bulkterm_v<version>_<os>_<arch>.tar.gz`` for each platform of
:data:`PLATFORMS` and ``plugins/krew/bulkterm.yaml``, the krew manifest, whose ``sha256`` are
those of the archives just written: the manifest is only ever made from the archives, so the
two cannot disagree. docs/krew.md says how to use them.

Each archive holds one executable, ``kubectl-bulkterm`` (and the LICENSE when the repository
has one): a PEX zipapp of the project's wheel and every package of requirements/runtime.lock,
run by the user's CPython (:data:`PYTHONS`). Why PEX (pex-tool, released monthly, no
dependencies of its own): one zipapp may carry the compiled wheels of several CPython
versions and picks the right ones when it starts (shiv installs one interpreter's wheels
into one site-packages, and its last release is two years old); it builds for a platform
other than the one it runs on from a complete description of the target (marker
environment and wheel tags); and its ``--sh-boot`` preamble finds a suitable ``python3.X``
on the PATH with ``/bin/sh``, before any Python starts.

Every wheel comes from requirements/runtime.lock with its sha256 checked: pip downloads, for
each platform and CPython version, exactly the lock's pins (``--require-hashes --no-deps
--only-binary=:all:``, the lock's markers evaluated here for the target, not for this
machine), then pex builds from those files alone (``--no-pypi``). The downloads are kept in
a cache outside the clone (BULKTERM_KREW_WHEELS, default
``~/.cache/bulk-termination-operator/krew-wheels``), keyed by the lock and the targets, so only
a changed lock downloads again. Before pex runs, each file's sha256 is checked again against
the lock, and every CPython version of every platform must find a wheel of every pin it
needs; after, each archive's native code must be built for its platform's OS and CPU
(:func:`native_code`). The archives are reproducible: the same sources and lock give the
same bytes.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging import tags
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements" / "runtime.lock"
DIST = ROOT / "dist" / "krew"
MANIFEST = ROOT / "plugins" / "krew" / "bulkterm.yaml"
#: krew's plugin name (``kubectl bulkterm``) and the executable kubectl runs for it.
PLUGIN = "bulkterm"
EXECUTABLE = "kubectl-bulkterm"
#: Where the project lives (pyproject.toml has no URL yet; the chart's ``home`` is this).
HOMEPAGE = "https://github.com/bulkops/bulk-termination-operator"
#: The release assets the manifest points at: one per platform, attached to tag v<version>.
ASSET_URL = HOMEPAGE + "/releases/download/v{version}/{name}"
#: The CPython versions each archive carries compiled wheels for: from requires-python's floor
#: (checked by :func:`check_pythons`) to the newest for which every pinned package has wheels.
PYTHONS = ((3, 11), (3, 12), (3, 13), (3, 14), (3, 15))
#: Oldest C library and OS each archive runs on: glibc 2.28 (Debian 10, Ubuntu 20.04,
#: RHEL 8), macOS 11 (the first on Apple silicon).
GLIBC = (2, 28)
MACOS = (11, 0)
LICENSE_NAMES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "COPYING")
#: The archives' file times (1980-01-01, the earliest a zip can hold): fixed, so that the same
#: inputs give the same bytes and so the same sha256.
EPOCH = 315532800
#: Bump when the download scheme changes, so caches made by an older one are not reused.
WHEELHOUSE_SCHEME = "1"


@dataclass(frozen=True)
class Platform:
    """One krew platform: its selector labels and what its wheels must be built for."""

    os: str  # krew's os label (Go's GOOS)
    arch: str  # krew's arch label (Go's GOARCH)
    machine: str  # platform.machine() there; also the CPU :func:`native_code` expects

    @property
    def key(self) -> str:
        return f"{self.os}/{self.arch}"

    def wheel_platforms(self) -> list[str]:
        """Wheel platform tags this platform runs, most specific first."""
        if self.os == "darwin":
            return list(tags.mac_platforms(MACOS, self.machine))
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        out = []
        for minor in range(GLIBC[1], 4, -1):
            out.append(f"manylinux_{GLIBC[0]}_{minor}_{self.machine}")
            if minor in legacy:
                out.append(f"{legacy[minor]}_{self.machine}")
        return out

    def marker_environment(self, python: tuple[int, int]) -> dict[str, str]:
        """PEP 508's marker values on this platform under CPython ``python``."""
        version = dotted(python)
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{version}.0",
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": {"linux": "Linux", "darwin": "Darwin"}[self.os],
            "platform_version": "",
            "python_full_version": f"{version}.0",
            "python_version": version,
            "sys_platform": self.os,
        }

    def compatible_tags(self, python: tuple[int, int]) -> list[str]:
        """The wheel tags CPython ``python`` accepts here, most specific first (as pip ranks)."""
        interpreter = "cp{}{}".format(*python)
        platforms = self.wheel_platforms()
        found = list(tags.cpython_tags(python, abis=[interpreter], platforms=platforms))
        found += tags.compatible_tags(python, interpreter=interpreter, platforms=platforms)
        return [str(tag) for tag in found]

    def complete_platform(self, python: tuple[int, int]) -> dict[str, Any]:
        """pex's ``--complete-platform``: the target described exactly, not guessed."""
        return {
            "marker_environment": self.marker_environment(python),
            "compatible_tags": self.compatible_tags(python),
        }


#: The platforms the manifest offers. darwin/amd64 is left out: cryptography 49.0.0 (a
#: runtime pin) publishes no wheel for macOS on Intel, so that archive cannot be built from
#: PyPI's wheels (docs/krew.md).
PLATFORMS = {
    p.key: p
    for p in (
        Platform("linux", "amd64", "x86_64"),
        Platform("linux", "arm64", "aarch64"),
        Platform("darwin", "arm64", "arm64"),
    )
}


def dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


class BuildError(RuntimeError):
    """The archives cannot be built as promised; the message says why."""


# -- the project and its lock --------------------------------------------------------------


def project() -> dict[str, Any]:
    meta: dict[str, Any] = tomllib.loads(PYPROJECT.read_text())["project"]
    return meta


def check_pythons(requires_python: str) -> None:
    """:data:`PYTHONS` starts at requires-python's floor and every one of them is allowed."""
    allowed = SpecifierSet(requires_python)
    first = PYTHONS[0]
    below = dotted((first[0], first[1] - 1))
    if any(dotted(python) not in allowed for python in PYTHONS) or below in allowed:
        raise BuildError(
            f"PYTHONS ({', '.join(map(dotted, PYTHONS))}) does not start at "
            f"requires-python {requires_python!r}: change PYTHONS in hack/krew/build.py"
        )


@dataclass(frozen=True)
class Pin:
    """One entry of a hashed lock."""

    requirement: Requirement
    hashes: frozenset[str]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> str:
        return next(iter(self.requirement.specifier)).version

    def applies(self, environment: dict[str, str]) -> bool:
        marker = self.requirement.marker
        return marker is None or marker.evaluate(dict(environment))

    def line(self) -> str:
        """The pin for a requirements file, with its hashes and without its marker (evaluated
        already, for the target rather than for this machine)."""
        hashes = " ".join(f"--hash=sha256:{h}" for h in sorted(self.hashes))
        return f"{self.requirement.name}=={self.version} {hashes}"


def read_lock(path: Path = LOCK) -> list[Pin]:
    """``name==version ; marker`` entries of a hashed lock, each with its sha256 hashes."""
    pins = []
    for requirement, options in _lock_module().pinned(path.read_text()):
        hashes = frozenset(o.removeprefix("sha256:") for o in options if o.startswith("sha256:"))
        if not hashes:
            raise BuildError(f"{path.name}: {requirement} has no --hash")
        pins.append(Pin(Requirement(requirement), hashes))
    return pins


def _lock_module() -> Any:
    """requirements/lock.py (a script, not a package): where a lock is read."""
    spec = importlib.util.spec_from_file_location(
        "requirements_lock", ROOT / "requirements" / "lock.py"
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


# -- wheels ---------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def wheelhouse_key(platform: Platform, pins: list[Pin]) -> str:
    """What a platform's downloads depend on: the pins and the targets' tags."""
    inputs = {
        "scheme": WHEELHOUSE_SCHEME,
        "pins": sorted(f"{p.requirement}|{','.join(sorted(p.hashes))}" for p in pins),
        "targets": {dotted(py): platform.compatible_tags(py) for py in PYTHONS},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Wheelhouse:
    """The lock's wheels for one platform, every CPython of :data:`PYTHONS`."""

    path: Path
    downloaded: bool  # False: reused from the cache


def wheelhouse(platform: Platform, pins: list[Pin], cache: Path) -> Wheelhouse:
    """Download (or reuse) the platform's wheels; one download at a time per cache."""
    cache.mkdir(parents=True, exist_ok=True)
    prefix = f"{platform.os}-{platform.arch}-"
    folder = cache / (prefix + wheelhouse_key(platform, pins))
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / ".complete").exists():
            return Wheelhouse(folder, downloaded=False)
        partial = Path(tempfile.mkdtemp(prefix=f".{prefix}", dir=cache))
        try:
            for python in PYTHONS:
                _download(platform, python, pins, partial)
            (partial / ".complete").write_text("")
            for stale in cache.glob(prefix + "*"):  # older locks' downloads
                shutil.rmtree(stale)
            partial.rename(folder)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return Wheelhouse(folder, downloaded=True)


def _download(platform: Platform, python: tuple[int, int], pins: list[Pin], dest: Path) -> None:
    environment = platform.marker_environment(python)
    lines = [pin.line() for pin in pins if pin.applies(environment)]
    requirements = dest / ".requirements.txt"
    requirements.write_text("\n".join(lines) + "\n")
    version = dotted(python)
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
        "--require-hashes", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
        "--implementation", "cp", "--python-version", version,
        "--abi", "cp{}{}".format(*python), "--abi", "abi3", "--abi", "none",
        *(arg for tag in platform.wheel_platforms() for arg in ("--platform", tag)),
        "--requirement", str(requirements),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    requirements.unlink()
    if result.returncode != 0:
        raise BuildError(
            f"pip could not download the locked wheels for {platform.key} under CPython "
            f"{version}:\n{result.stderr.strip()[-3000:]}"
        )


def unlocked_wheels(pins: list[Pin], wheels: dict[str, bytes]) -> list[str]:
    """The wheels (file name -> content) that are not a file of the lock, by sha256."""
    by_name = {pin.name: pin for pin in pins}
    wrong = []
    for filename, content in sorted(wheels.items()):
        name, version, _, _ = parse_wheel_filename(filename)
        pin = by_name.get(name)
        if pin is None or str(version) != pin.version:
            wrong.append(f"{filename} (not pinned)")
        elif hashlib.sha256(content).hexdigest() not in pin.hashes:
            wrong.append(f"{filename} (sha256 not in the lock)")
    return wrong


def coverage_gaps(platform: Platform, pins: list[Pin], filenames: list[str]) -> list[str]:
    """Each pin that some CPython of :data:`PYTHONS` on the platform needs (its marker holds
    there) and finds no wheel for among ``filenames``."""
    offered: dict[str, set[str]] = {}
    for filename in filenames:
        name, _, _, wheel_tags = parse_wheel_filename(filename)
        offered.setdefault(name, set()).update(str(tag) for tag in wheel_tags)
    gaps = []
    for python in PYTHONS:
        accepted = set(platform.compatible_tags(python))
        environment = platform.marker_environment(python)
        for pin in pins:
            if pin.applies(environment) and not offered.get(pin.name, set()) & accepted:
                gaps.append(f"{pin.name}=={pin.version} for CPython {dotted(python)}")
    return gaps


def check_wheels(platform: Platform, pins: list[Pin], wheels: list[Path]) -> None:
    """Every downloaded file is one the lock names, and nothing the targets need is missing."""
    wrong = unlocked_wheels(pins, {wheel.name: wheel.read_bytes() for wheel in wheels})
    if wrong:
        raise BuildError(f"{platform.key}: not from {LOCK.name}: " + ", ".join(wrong))
    gaps = coverage_gaps(platform, pins, [wheel.name for wheel in wheels])
    if gaps:
        raise BuildError(f"{platform.key}: no wheel of " + ", ".join(gaps))


def project_wheel(dest: Path) -> Path:
    """The project's wheel, built from a clean copy of its sources (a stale ``build/`` in the
    clone can hold modules that no longer exist), with fixed file times."""
    with tempfile.TemporaryDirectory(prefix="bulkterm-src-") as tmp:
        src = Path(tmp)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(
            ROOT / "operator",
            src / "operator",
            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
        )
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(EPOCH)}
        command = [
            sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--no-build-isolation", "--no-index", "--wheel-dir", str(dest), str(src),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise BuildError(f"pip could not build the project's wheel:\n{result.stderr[-3000:]}")
    (wheel,) = dest.glob("*.whl")
    return wheel


# -- the PEX and the archive ----------------------------------------------------------------


def build_pex(
    platform: Platform, wheels: Path, project_whl: Path, name: str, version: str, out: Path
) -> None:
    with tempfile.TemporaryDirectory(prefix="bulkterm-pex-") as tmp:
        targets = []
        for python in PYTHONS:
            target = Path(tmp) / "cp{}{}.json".format(*python)
            target.write_text(json.dumps(platform.complete_platform(python)))
            targets += ["--complete-platform", str(target)]
        command = [
            sys.executable, "-m", "pex", f"{name}=={version}",
            "--no-pypi", "--pre-resolved-dists", str(wheels), "--pre-resolved-dists",
            str(project_whl), *targets,
            "--console-script", EXECUTABLE,
            # /bin/sh picks python3.11 ... python3.15, else python3, from the PATH; the PEX
            # refuses one it has no wheels for, saying why (requires-python, or the wheels).
            # No --interpreter-constraint: pex would add this machine's Python as a target.
            "--sh-boot", "--python-shebang", "/usr/bin/env python3",
            # Wheels stay wheels in the PEX: smaller, and built in seconds; the first run
            # installs them into PEX_ROOT. Not --venv: it starts about 0.4 s faster, but
            # binds the PEX_ROOT copy to the first Python that ran it for good, so upgrading
            # or removing that Python would break the plugin until PEX_ROOT is cleared.
            "--no-pre-install-wheels", "--max-install-jobs", "0",
            "--output-file", str(out),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"pex failed for {platform.key}:\n{result.stderr.strip()[-3000:]}")


def license_file() -> Path | None:
    return next((ROOT / n for n in LICENSE_NAMES if (ROOT / n).is_file()), None)


def write_archive(executable: Path, license_path: Path | None, out: Path) -> None:
    """A .tar.gz of the executable (0755) and the license, byte for byte reproducible."""

    def add(tar: tarfile.TarFile, source: Path, name: str, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.size = source.stat().st_size
        info.mode = mode
        info.mtime = EPOCH
        with source.open("rb") as handle:
            tar.addfile(info, handle)

    with (
        out.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=EPOCH) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        add(tar, executable, EXECUTABLE, 0o755)
        if license_path is not None:
            add(tar, license_path, license_path.name, 0o644)


def archive_name(version: str, platform: Platform) -> str:
    return f"{EXECUTABLE}_v{version}_{platform.os}_{platform.arch}.tar.gz"


# -- what an archive holds ------------------------------------------------------------------

_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
_MACHO_CPUS = {0x01000007: "x86_64", 0x0100000C: "arm64"}
_NATIVE = re.compile(r"\.(so|dylib)(\.[0-9]+)*$")


def binary_targets(head: bytes) -> tuple[str, frozenset[str]] | None:
    """(OS, CPUs) a native library is built for, read from its header; None if not one."""
    if head[:4] == b"\x7fELF":
        byteorder = "<" if head[5] == 1 else ">"
        (machine,) = struct.unpack_from(byteorder + "H", head, 18)
        return "linux", frozenset({_ELF_MACHINES.get(machine, f"elf-machine-{machine}")})
    if head[:4] == b"\xcf\xfa\xed\xfe":  # Mach-O 64-bit, little-endian
        (cpu,) = struct.unpack_from("<I", head, 4)
        return "darwin", frozenset({_MACHO_CPUS.get(cpu, hex(cpu))})
    if head[:4] in (b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"):  # universal (fat) Mach-O
        (count,) = struct.unpack_from(">I", head, 4)
        size = 20 if head[3] == 0xBE else 32
        cpus = {struct.unpack_from(">I", head, 8 + i * size)[0] for i in range(count)}
        return "darwin", frozenset(_MACHO_CPUS.get(cpu, hex(cpu)) for cpu in cpus)
    return None


@dataclass(frozen=True)
class Native:
    """A native library inside a wheel inside the PEX."""

    wheel: str
    member: str
    os: str
    cpus: frozenset[str]


def pex_of(archive: Path) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile(EXECUTABLE)
        if member is None:
            raise BuildError(f"{archive.name} has no {EXECUTABLE}")
        return member.read()


def pex_wheels(pex: bytes) -> dict[str, bytes]:
    """The wheels a PEX carries (``.deps/<wheel>``, stored as downloaded): name -> content."""
    with zipfile.ZipFile(io.BytesIO(pex)) as outer:
        return {
            name.removeprefix(".deps/"): outer.read(name)
            for name in outer.namelist()
            if name.startswith(".deps/") and name.endswith(".whl")
        }


def native_code(archive: Path) -> list[Native]:
    """Every native library of every wheel in an archive's PEX, with what it is built for."""
    found = []
    for wheel_name, content in pex_wheels(pex_of(archive)).items():
        with zipfile.ZipFile(io.BytesIO(content)) as wheel:
            for member in wheel.namelist():
                if _NATIVE.search(member):
                    with wheel.open(member) as handle:
                        head = handle.read(4096)
                    targets = binary_targets(head)
                    if targets is None:
                        raise BuildError(f"{wheel_name}: {member} is no ELF or Mach-O library")
                    found.append(Native(wheel_name, member, *targets))
    return found


def check_native_code(platform: Platform, archive: Path) -> int:
    """Every native library in the archive runs on the platform; returns how many there are."""
    libraries = native_code(archive)
    wrong = [
        f"{lib.wheel}: {lib.member} ({lib.os} {'+'.join(sorted(lib.cpus))})"
        for lib in libraries
        if lib.os != platform.os or platform.machine not in lib.cpus
    ]
    if wrong:
        raise BuildError(f"{archive.name}: native code not for {platform.key}: {', '.join(wrong)}")
    return len(libraries)


# -- the manifest ---------------------------------------------------------------------------

MANIFEST_TEMPLATE = """\
# Written by hack/krew/build.py (`make plugin-archive`) from the archives it built, with
# their sha256: do not edit by hand. docs/krew.md says how it is made and installed.
apiVersion: krew.googlecontainertools.github.com/v1alpha2
kind: Plugin
metadata:
  name: {plugin}
spec:
  version: v{version}
  homepage: {homepage}
  shortDescription: Inspect, suspend and approve BulkTerminations
  description: |
    kubectl bulkterm reads and steers BulkTerminations, the custom resources with which
    the bulk-termination-operator stops and deletes SAP AI Core deployments and executions
    in bulk: where a run stands (progress, what is in flight, failures by reason), the plan
    it waits with and its approval, suspend and resume, and splitting a BulkTermination too
    large for the API server into several. It uses your kubeconfig and your rights, as
    kubectl does, and needs no access to the operator.
  caveats: |
    kubectl bulkterm is a Python program (a PEX zipapp): it needs CPython {floor} to {top}
    on the PATH (as python{floor} ... python{top}, or python3).{glibc}
    Its first run unpacks its libraries into ~/.cache/pex (set PEX_ROOT to put them
    elsewhere), which takes a few seconds; later runs start in about a second.
  platforms:
{platforms}"""

PLATFORM_TEMPLATE = """\
  - selector:
      matchLabels:
        os: {os}
        arch: {arch}
    uri: {uri}
    sha256: {sha256}
    bin: {bin}
"""


def render_manifest(version: str, digests: dict[str, str]) -> str:
    """The krew manifest for the archives of ``digests`` (platform key -> sha256)."""
    entries = []
    for key, sha256 in digests.items():
        platform = PLATFORMS[key]
        uri = ASSET_URL.format(version=version, name=archive_name(version, platform))
        entries.append(
            PLATFORM_TEMPLATE.format(
                os=platform.os, arch=platform.arch, uri=uri, sha256=sha256, bin=EXECUTABLE
            )
        )
    linux = any(PLATFORMS[key].os == "linux" for key in digests)
    return MANIFEST_TEMPLATE.format(
        plugin=PLUGIN,
        version=version,
        homepage=HOMEPAGE,
        floor=dotted(PYTHONS[0]),
        top=dotted(PYTHONS[-1]),
        glibc=f"\n    On Linux it needs glibc {dotted(GLIBC)} or newer (not musl)."
        if linux
        else "",
        platforms="".join(entries),
    )


# -- main -----------------------------------------------------------------------------------


def default_cache() -> Path:
    if "BULKTERM_KREW_WHEELS" in os.environ:
        return Path(os.environ["BULKTERM_KREW_WHEELS"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bulk-termination-operator" / "krew-wheels"


def build(out: Path, manifest: Path, keys: list[str], cache: Path) -> dict[str, Path]:
    """Build the archives of ``keys`` into ``out`` and write ``manifest``; returns them."""
    if importlib.util.find_spec("pex") is None:
        raise BuildError(
            "pex is not installed in this Python: `.venv/bin/pip install pex` (docs/krew.md)"
        )
    meta = project()
    check_pythons(meta["requires-python"])
    name, version = meta["name"], meta["version"]
    pins = read_lock()
    out.mkdir(parents=True, exist_ok=True)
    archives: dict[str, Path] = {}
    digests: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bulkterm-krew-") as tmp:
        started = time.monotonic()
        whl = project_wheel(Path(tmp) / "wheel")
        log(f"{whl.name} built ({time.monotonic() - started:.1f} s)")
        for key in keys:
            platform = PLATFORMS[key]
            started = time.monotonic()
            house = wheelhouse(platform, pins, cache)
            wheels = sorted(house.path.glob("*.whl"))
            check_wheels(platform, pins, wheels)
            pex = Path(tmp) / f"{platform.os}-{platform.arch}" / EXECUTABLE
            pex.parent.mkdir()
            build_pex(platform, house.path, whl, name, version, pex)
            archive = out / archive_name(version, platform)
            write_archive(pex, license_file(), archive)
            libraries = check_native_code(platform, archive)
            archives[key] = archive
            digests[key] = sha256_of(archive)
            source = "downloaded" if house.downloaded else "from the cache"
            log(
                f"{key}: {shown(archive)} ({archive.stat().st_size / 1e6:.1f} MB; {len(wheels)} locked "
                f"wheels {source}; {libraries} native libraries, all {platform.os}/"
                f"{platform.machine}; {time.monotonic() - started:.1f} s) sha256 {digests[key]}"
            )
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(render_manifest(version, digests))
    log(f"{shown(manifest)} written")
    return archives


def log(message: str) -> None:
    print(f"plugin-archive: {message}", file=sys.stderr)


def shown(path: Path) -> str:
    """``path`` as the user would type it: relative to the current folder when inside it."""
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DIST, help=f"default: {DIST}")
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help=f"default: {MANIFEST}")
    parser.add_argument(
        "--platform",
        action="append",
        choices=list(PLATFORMS),
        help="repeatable (default: all of them)",
    )
    parser.add_argument(
        "--cache", type=Path, default=None, help="downloaded wheels (default: ~/.cache/...)"
    )
    args = parser.parse_args(argv)
    try:
        build(
            args.out, args.manifest, args.platform or list(PLATFORMS), args.cache or default_cache()
        )
    except BuildError as error:
        print(f"plugin-archive: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
