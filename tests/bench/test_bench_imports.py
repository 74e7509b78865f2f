"""The benchmark scripts' imports stay a DAG and use nothing private of the test suite.

``bench/`` is a folder of scripts (``python bench/run.py``), not a package: the entry scripts
import the shared modules beside them (``common.py``, ``cluster.py``, ``targets.py``), and a
shared module imports no entry script. Every import statement counts, also one inside a
function, so a late import cannot hide a circle. From ``tests/`` the benchmark may use public
names only (``ControlPlane``, ``Kube``, ``die_with_parent``): a private helper of the test suite
can change with the tests at any time.

Read from the source with ``ast``: nothing in ``bench/`` is imported or run here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
TESTS = "tests"


def bench_sources() -> dict[str, str]:
    return {path.stem: path.read_text() for path in sorted(BENCH.glob("*.py"))}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def local_imports(tree: ast.AST, modules: Iterable[str]) -> set[str]:
    """The bench modules ``tree`` imports, wherever the import statement is (module level or
    in a function): ``import x``, ``from x import y``, ``from bench(.x) import y``, relative."""
    known = set(modules)
    found: set[str] = set()

    def note(dotted: str, names: Iterable[str] = ()) -> None:
        parts = dotted.split(".") if dotted else []
        if parts[:1] == ["bench"]:
            parts = parts[1:]
            if not parts:  # ``from bench import x``
                found.update(n for n in names if n in known)
                return
        if parts and parts[0] in known:
            found.add(parts[0])

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                note(alias.name)
        elif isinstance(node, ast.ImportFrom):
            names = [alias.name for alias in node.names]
            if node.level:  # ``from . import x`` / ``from .x import y``
                if node.module:
                    note(node.module)
                else:
                    found.update(n for n in names if n in known)
            else:
                note(node.module or "", names)
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    return {
        name: local_imports(ast.parse(text, filename=f"bench/{name}.py"), sources)
        for name, text in sources.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (``[a, b, a]``), or ``None`` when the graph is a DAG."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return [*path[path.index(node) :], node]
        if node in done:
            return None
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if (cycle := visit(nxt)) is not None:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if (cycle := visit(start)) is not None:
            return cycle
    return None


def private_test_imports(tree: ast.AST) -> list[str]:
    """Private names reached from ``tests``: ``from tests.x import _y``, a ``_module`` in the
    dotted path, and ``alias._y`` on a module imported from ``tests``."""
    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != TESTS:
                    continue
                if any(_private(part) for part in alias.name.split(".")):
                    found.append(alias.name)
                aliases.add(alias.asname or TESTS)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            parts = node.module.split(".")
            if parts[0] != TESTS:
                continue
            if any(_private(part) for part in parts):
                found.append(node.module)
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{node.module}.{alias.name}")
                else:
                    # ``from tests.kube import controlplane``: a module, maybe; its ``_x`` too.
                    aliases.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not _private(node.attr):
            continue
        chain, root = [node.attr], node.value
        while isinstance(root, ast.Attribute):
            chain.append(root.attr)
            root = root.value
        if isinstance(root, ast.Name) and root.id in aliases:
            found.append(".".join([root.id, *reversed(chain)]))
    return found


# --- the checks ------------------------------------------------------------------------------


def test_bench_imports_form_no_cycle() -> None:
    graph = import_graph(bench_sources())
    assert {"run", "fleet", "operator_vs_apply", "common", "cluster"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, f"import circle in bench/: {' -> '.join(cycle)}"


def test_shared_modules_import_no_entry_script() -> None:
    graph = import_graph(bench_sources())
    entry_scripts = {"run", "fleet", "operator_vs_apply", "sdk_worker", "scale_worker"}
    for shared in ("common", "cluster", "targets", "sdk_baseline", "plot"):
        assert not graph[shared] & entry_scripts, (shared, graph[shared])


def test_bench_imports_nothing_private_from_tests() -> None:
    offending = {
        name: found
        for name, text in bench_sources().items()
        if (found := private_test_imports(ast.parse(text)))
    }
    assert not offending, offending


# --- the checks see what they are for: the layout bench/ had before ---------------------------

OLD_LAYOUT = {
    "run": "import sdk_baseline\nfrom targets import RESOURCE_GROUP\n"
    "def entry():\n    import fleet  # late, since it imports this module\n",
    "fleet": "from operator_vs_apply import manifest_of\n"
    "from run import TOKEN_ROUTE\nfrom targets import RESOURCE_GROUP\n",
    "operator_vs_apply": "from run import bench_timings\n"
    "from tests.kube.controlplane import _die_with_parent as die_with_parent\n",
    "targets": "",
    "sdk_baseline": "",
}


def test_the_old_circle_would_be_found() -> None:
    graph = import_graph(OLD_LAYOUT)
    assert graph["run"] == {"sdk_baseline", "targets", "fleet"}  # the late import counts
    assert find_cycle(graph) == ["fleet", "operator_vs_apply", "run", "fleet"]
    del graph["fleet"]
    assert find_cycle(graph) is None


def test_the_old_private_import_would_be_found() -> None:
    tree = ast.parse(OLD_LAYOUT["operator_vs_apply"])
    assert private_test_imports(tree) == ["tests.kube.controlplane._die_with_parent"]
    by_attribute = "import tests.kube.controlplane as cp\nx = cp._die_with_parent\n"
    assert private_test_imports(ast.parse(by_attribute)) == ["cp._die_with_parent"]
    dotted = "import tests.kube.controlplane\ntests.kube.controlplane._die_with_parent()\n"
    assert private_test_imports(ast.parse(dotted)) == ["tests.kube.controlplane._die_with_parent"]
    public = "from tests.kube.controlplane import ControlPlane, die_with_parent\n"
    assert private_test_imports(ast.parse(public)) == []
