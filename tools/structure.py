"""Files, lines, the largest file and the import arrows of the product (operator/bulkterm).

``python tools/structure.py [ROOT]`` prints one line of figures and the files over the
450-line budget (CONTRIBUTING.md); ROOT defaults to this checkout, or is an export of another
commit (``git archive REV | tar -x -C DIR``). An import arrow is one importing module → one
imported module of the package, counted once however often it is imported.
"""

import ast
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parents[1])
pkg = root / "operator"
files = sorted(p for p in (pkg / "bulkterm").rglob("*.py"))
lines = {p: sum(1 for _ in p.open()) for p in files}


def modname(p):
    rel = p.relative_to(pkg).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


mods = {modname(p): p for p in files}
arrows = set()
for m, p in mods.items():
    tree = ast.parse(p.read_text())
    is_pkg = p.name == "__init__.py"
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = m.split(".") if is_pkg else m.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for t in targets:
            # longest internal module prefix
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != m:
                arrows.add((m, t))


def folder(module: str) -> str:
    """``bulkterm.engine.run`` → ``bulkterm.engine``; a top-level module is its own folder."""
    parts = module.split(".")
    return ".".join(parts[:2]) if (pkg / "/".join(parts[:2])).is_dir() else module


folders = {(folder(a), folder(b)) for a, b in arrows if folder(a) != folder(b)}
per_folder: dict[str, int] = {}
for p, n in lines.items():
    key = folder(modname(p))
    per_folder[key] = per_folder.get(key, 0) + n
big = max(lines, key=lines.get)
print(
    f"files={len(files)} lines={sum(lines.values())} largest={big.relative_to(root)}:{lines[big]} import_arrows={len(arrows)}"
)
print(
    "over 450:",
    ", ".join(
        f"{p.relative_to(pkg)}:{n}"
        for p, n in sorted(lines.items(), key=lambda x: -x[1])
        if n > 450
    ),
)
print(f"folder_arrows={len(folders)}")
print("lines per folder:", ", ".join(f"{k}:{v}" for k, v in sorted(per_folder.items())))
