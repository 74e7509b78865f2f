"""The hashed locks in requirements/ cover pyproject.toml exactly, and the tests run on them.

Each lock must be fresh (made from pyproject.toml's current dependency lists: its
``inputs-sha256`` line), pin every requirement of pyproject.toml within its range, and pin every
package it lists exactly, with hashes: that is what lets ``pip install --require-hashes``
(``make install``, the Dockerfile) install exactly the files that were locked. The checks are
plain functions, so the tests below also show each of them catching a bad lock.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"


#: requirements/lock.py: the single definition of each lock's inputs, and of reading one.
LOCK = load_script("requirements/lock.py", "requirements_lock")
PYPROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())


@dataclass
class Pin:
    name: str
    requirement: Requirement
    hashes: list[str] = field(default_factory=list)

    @property
    def version(self) -> str | None:
        specs = list(self.requirement.specifier)
        if len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version:
            return specs[0].version
        return None


def parse_lock(text: str) -> tuple[str | None, list[Pin]]:
    """The ``inputs-sha256`` of a lock and its entries (continuation lines joined)."""
    digest = next(
        (
            line.removeprefix(LOCK.DIGEST_PREFIX).strip()
            for line in text.splitlines()
            if line.startswith(LOCK.DIGEST_PREFIX)
        ),
        None,
    )
    entries = []
    for requirement_text, options in LOCK.pinned(text):
        requirement = Requirement(requirement_text)
        entries.append(Pin(canonicalize_name(requirement.name), requirement, options))
    return digest, entries


def lock_problems(name: str, text: str, pyproject: dict[str, Any]) -> list[str]:
    """Everything wrong with lock ``name`` (its text) for ``pyproject``; empty when it is good."""
    problems: list[str] = []
    digest, pins = parse_lock(text)
    if digest != LOCK.inputs_digest(name, pyproject):
        problems.append(
            f"requirements/{name}.lock is stale: it was not made from pyproject.toml's current "
            "dependency lists (run `make lock`)"
        )
    by_name: dict[str, Pin] = {}
    for pin in pins:
        if pin.name in by_name:
            problems.append(f"requirements/{name}.lock: {pin.name} is listed twice")
        by_name[pin.name] = pin
        if pin.version is None:
            problems.append(
                f"requirements/{name}.lock: {pin.requirement} is not pinned with == to a version"
            )
        if not pin.hashes or not all(h.startswith("sha256:") for h in pin.hashes):
            problems.append(f"requirements/{name}.lock: {pin.name} has no sha256 hash")
    for wanted in map(Requirement, LOCK.inputs(name, pyproject)):
        pin = by_name.get(canonicalize_name(wanted.name))
        if pin is None:
            problems.append(
                f"requirements/{name}.lock: {wanted.name} (pyproject.toml: {wanted}) is missing"
            )
        elif pin.version is not None and not wanted.specifier.contains(
            pin.version, prereleases=True
        ):
            problems.append(
                f"requirements/{name}.lock: {pin.name}=={pin.version} is outside pyproject.toml's "
                f"{wanted}"
            )
    return problems


def read_lock(name: str) -> str:
    return (REQUIREMENTS / f"{name}.lock").read_text()


def applies(pin: Pin) -> bool:
    marker = pin.requirement.marker
    return marker is None or marker.evaluate()


# -- the locks as committed ------------------------------------------------------------------


@pytest.mark.parametrize("name", LOCK.LOCKS)
def test_each_lock_is_fresh_complete_pinned_and_hashed(name: str) -> None:
    assert lock_problems(name, read_lock(name), PYPROJECT) == []


@pytest.mark.parametrize("name", ["runtime", "build"])
def test_runtime_and_build_locks_pin_the_same_versions_as_the_test_lock(name: str) -> None:
    tested = {pin.name: pin.version for pin in parse_lock(read_lock("test"))[1]}
    differing = [
        f"{pin.name}: {pin.version} here, {tested[pin.name]} in test.lock"
        for pin in parse_lock(read_lock(name))[1]
        if pin.name in tested and tested[pin.name] != pin.version
    ]
    assert differing == []


def test_runtime_lock_holds_only_what_the_runtime_dependencies_pull_in() -> None:
    # The image installs runtime.lock: a test tool in it would ship in the image.
    runtime = {pin.name for pin in parse_lock(read_lock("runtime"))[1]}
    tools = {
        canonicalize_name(Requirement(r).name)
        for r in PYPROJECT["project"]["optional-dependencies"]["test"]
    }
    assert runtime & tools == set()


def test_the_tests_run_on_exactly_the_locked_versions() -> None:
    """``make install`` installed test.lock: a version that differs means the environment was
    made some other way, and a green run would say nothing about the locked set."""
    differing = []
    for pin in parse_lock(read_lock("test"))[1]:
        if not applies(pin):
            continue
        try:
            installed = metadata.version(pin.name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pin.version:
            differing.append(f"{pin.name}: locked {pin.version}, installed {installed}")
    assert differing == [], "run `make install` (it installs requirements/test.lock)"


# -- the checks catch bad locks ----------------------------------------------------------------


def _edited(pyproject: dict[str, Any], **project: Any) -> dict[str, Any]:
    return {**pyproject, "project": {**pyproject["project"], **project}}


def test_a_dependency_added_to_pyproject_without_make_lock_is_reported_stale_and_missing() -> None:
    edited = _edited(PYPROJECT, dependencies=[*PYPROJECT["project"]["dependencies"], "leftpad>=1"])
    problems = lock_problems("runtime", read_lock("runtime"), edited)
    assert any("runtime.lock is stale" in p and "make lock" in p for p in problems)
    assert "requirements/runtime.lock: leftpad (pyproject.toml: leftpad>=1) is missing" in problems


def test_a_range_the_pinned_version_leaves_is_reported() -> None:
    deps = [
        d if not d.startswith("httpx") else "httpx>=99"
        for d in PYPROJECT["project"]["dependencies"]
    ]
    problems = lock_problems("runtime", read_lock("runtime"), _edited(PYPROJECT, dependencies=deps))
    assert any(
        p.startswith("requirements/runtime.lock: httpx==") and "httpx>=99" in p for p in problems
    )


def test_an_entry_without_hashes_is_reported() -> None:
    text = re.sub(
        r"(?m)^(click==\S+) \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+\n", r"\1\n", read_lock("runtime")
    )
    assert "click has no sha256 hash" in "\n".join(lock_problems("runtime", text, PYPROJECT))


def test_an_entry_not_pinned_exactly_is_reported() -> None:
    text = re.sub(r"(?m)^click==", "click>=", read_lock("runtime"))
    problems = lock_problems("runtime", text, PYPROJECT)
    assert any("click>=" in p and "not pinned with ==" in p for p in problems)


def test_a_dependency_missing_from_the_lock_is_reported() -> None:
    text = re.sub(
        r"(?m)^prometheus-client==\S+ \\\n(\s+--hash=\S+ \\\n)*\s+--hash=\S+\n",
        "",
        read_lock("runtime"),
    )
    problems = lock_problems("runtime", text, PYPROJECT)
    assert any("prometheus-client" in p and "is missing" in p for p in problems)
