"""Make the hashed lock files of this folder from pyproject.toml (``make lock`` runs this).

Three locks, every package pinned with ``==`` and the sha256 of each of its files on PyPI,
resolved for every platform (``--universal``) from Python 3.11 on (the image's Python and the
development machines'):

* ``test.lock``: the runtime dependencies and the ``test`` extra (the tools of ``make test``,
  ``make lint`` and this script's uv); resolved first, it is the superset.
* ``runtime.lock``: ``[project].dependencies`` only, constrained to ``test.lock``'s versions,
  so the image runs exactly what the tests ran. The Dockerfile installs it.
* ``build.lock``: pip and the build backend (``[build-system].requires``), also constrained to
  ``test.lock``: what installs and builds the project, so even ``pip install -e .`` and
  ``pip wheel .`` fetch nothing unpinned.

A lock keeps the versions it already has while pyproject.toml still allows them (uv prefers
the pins of an existing output file), so adding one dependency moves nothing else;
``--upgrade`` takes the newest versions of everything, ``--upgrade-package NAME`` of one.

Each lock starts with a header saying how to refresh it and an ``inputs-sha256`` line: the
digest of the pyproject.toml lists it was made from (:func:`inputs_digest`). tests/test_lock.py
recomputes it, so a dependency changed in pyproject.toml without ``make lock`` fails the tests.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYPROJECT = ROOT / "pyproject.toml"
PYTHON_VERSION = "3.11"
#: What each lock is made from, in the order they are made (test first: it constrains the rest).
LOCKS = ("test", "runtime", "build")
#: Tools that install and build, locked beside ``[build-system].requires``.
INSTALLERS = ("pip",)
DIGEST_PREFIX = "# inputs-sha256: "


def pinned(text: str) -> list[tuple[str, list[str]]]:
    """Each entry of a lock: its requirement (``name==version ; marker``) and its
    ``--hash=`` options, continuation lines joined, comments left out. The one reading of a
    lock (tests/test_lock.py checks the locks with it, hack/krew/build.py packs from it)."""
    entries: list[tuple[str, list[str]]] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not stripped:
            continue
        logical += " " + stripped.removesuffix("\\")
        if stripped.endswith("\\"):
            continue
        hashes = re.findall(r"--hash=(\S+)", logical)
        entries.append((re.sub(r"--hash=\S+", "", logical).strip(), hashes))
        logical = ""
    return entries


HEADER = """\
# requirements/{name}.lock: {what}.
# Every package is pinned with the sha256 of each file PyPI has for it: `pip install
# --require-hashes -r` installs exactly these files and refuses anything else.
# Made from pyproject.toml by `make lock` (requirements/lock.py, uv pip compile): do not edit
# by hand. After changing a dependency in pyproject.toml, run `make lock` (pins still allowed
# are kept); `make lock UPGRADE=1` moves everything to the newest allowed versions,
# `make lock UPGRADE=name` one package. See docs/dependencies.md.
{prefix}{digest}
"""

WHAT = {
    "runtime": "what `bulkterm` needs at run time (the image installs this)",
    "test": "the runtime dependencies plus the `test` extra (`make install`)",
    "build": "pip and the build backend that install and build the project",
}


def inputs(name: str, pyproject: dict[str, Any] | None = None) -> list[str]:
    """The requirement strings of pyproject.toml that lock ``name`` is made from."""
    meta = pyproject if pyproject is not None else tomllib.loads(PYPROJECT.read_text())
    project = meta["project"]
    if name == "runtime":
        return list(project["dependencies"])
    if name == "test":
        return [*project["dependencies"], *project["optional-dependencies"]["test"]]
    if name == "build":
        return [*INSTALLERS, *meta["build-system"]["requires"]]
    raise ValueError(f"no lock named {name!r}; known: {', '.join(LOCKS)}")


def inputs_digest(name: str, pyproject: dict[str, Any] | None = None) -> str:
    """sha256 of the inputs of lock ``name`` (order and spacing of pyproject.toml ignored)."""
    normalised = sorted("".join(requirement.split()) for requirement in inputs(name, pyproject))
    return hashlib.sha256(json.dumps(normalised).encode()).hexdigest()


def lock_path(name: str) -> Path:
    return HERE / f"{name}.lock"


def compile_lock(uv: str, name: str, upgrade: list[str], upgrade_all: bool) -> None:
    """Run ``uv pip compile`` for one lock, then put the header in front of uv's output."""
    out = lock_path(name)
    command = [
        uv, "pip", "compile", "--quiet", "--generate-hashes", "--universal",
        "--python-version", PYTHON_VERSION, "--custom-compile-command", "make lock",
        "--output-file", str(out.relative_to(ROOT)),
    ]  # fmt: skip
    if upgrade_all:
        command.append("--upgrade")
    for package in upgrade:
        command += ["--upgrade-package", package]
    if name != "test":
        command += ["--constraint", str(lock_path("test").relative_to(ROOT))]
    stdin = None
    if name == "runtime":
        command.append("pyproject.toml")
    elif name == "test":
        command += ["--extra", "test", "pyproject.toml"]
    else:
        command.append("-")
        stdin = "\n".join(inputs(name)) + "\n"
    if out.exists():
        # uv reads its preferences from the existing file; our header is not a requirement.
        out.write_text(_without_header(out.read_text()))
    subprocess.run(command, cwd=ROOT, input=stdin, text=True, check=True)
    header = HEADER.format(
        name=name, what=WHAT[name], prefix=DIGEST_PREFIX, digest=inputs_digest(name)
    )
    out.write_text(header + _without_header(out.read_text()))


def _without_header(text: str) -> str:
    """The lock as uv wrote it: everything from uv's own first line on."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        if not line.startswith("# ") or line.startswith("# This file was autogenerated"):
            return "".join(lines[index:])
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--uv", default="uv", help="the uv executable (default: uv on PATH)")
    parser.add_argument(
        "--upgrade", action="store_true", help="newest allowed versions of everything"
    )
    parser.add_argument(
        "--upgrade-package", action="append", default=[], metavar="NAME", help="repeatable"
    )
    args = parser.parse_args(argv)
    for name in LOCKS:
        try:
            compile_lock(args.uv, name, args.upgrade_package, args.upgrade)
        except subprocess.CalledProcessError as error:
            print(f"lock: uv could not make requirements/{name}.lock ({error})", file=sys.stderr)
            return 1
        print(f"lock: requirements/{name}.lock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
