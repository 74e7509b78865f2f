"""The layering the folders promise: handlers → engine → AI API client, never backwards.

Read from the source with ``ast`` (no imports executed), like import-linter's contracts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "operator" / "bulkterm"


def imports_of(folder: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (
        sorted((PACKAGE / folder).rglob("*.py")) if folder else sorted(PACKAGE.glob("*.py"))
    ):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(PACKAGE))] = names
    return found


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{module} imports {name}"
        for module, names in imports_of(folder).items()
        for name in sorted(names)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        (
            "engine",
            (
                "kopf",
                "kubernetes",
                "httpx",
                "aiohttp",
                "bulkterm.k8s",
                "bulkterm.simulator",
                "bulkterm.aiapi.client",
            ),
        ),
        ("aiapi", ("kopf", "kubernetes", "bulkterm.engine", "bulkterm.k8s", "bulkterm.simulator")),
        (
            "simulator",
            ("kopf", "kubernetes", "bulkterm.engine", "bulkterm.k8s", "bulkterm.aiapi.client"),
        ),
    ],
)
def test_layer_does_not_import_what_it_must_not(folder: str, forbidden: tuple[str, ...]) -> None:
    assert offenders(folder, forbidden) == []


def test_only_the_handlers_import_kopf() -> None:
    everywhere = {**imports_of(""), **imports_of("k8s")}
    users = sorted(
        m
        for m, names in everywhere.items()
        if any(n == "kopf" or n.startswith("kopf.") for n in names)
    )
    assert users == ["k8s/handlers.py"], users


def test_no_package_named_operator_shadows_the_stdlib() -> None:
    assert not (PACKAGE.parent / "__init__.py").exists()
