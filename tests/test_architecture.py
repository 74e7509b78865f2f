"""The layering the folders promise: handlers → engine → AI API client, never backwards.

The layers, the forbidden imports and the absence of cycles are import-linter contracts
(``[tool.importlinter]`` in pyproject.toml); what they cannot say (one module may import kopf)
is read from the source with ``ast`` here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "operator" / "bulkterm"


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


def test_the_layer_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    """``[tool.importlinter]`` in pyproject.toml: k8s → engine → aiapi, what each may not
    import, and no import cycles (import-linter, as kopf checks its own layering)."""
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


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
