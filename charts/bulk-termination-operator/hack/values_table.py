#!/usr/bin/env python3
"""Write the values table of the chart's README.md from the comments in values.yaml.

values.yaml is the documentation of every setting (as in cert-manager's chart); this copies
it into the README between the markers, so the two cannot drift: tests/chart/test_readme.py
fails when the README's table is not what this script would write.

    python charts/bulk-termination-operator/hack/values_table.py          # rewrite README.md
    python charts/bulk-termination-operator/hack/values_table.py --check  # exit 1 if stale

Each key's description is the comment block right above it. Every key gets a row, mappings
included (their row has no default); lists and maps are shown as compact JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1]
VALUES = CHART / "values.yaml"
README = CHART / "README.md"
START = "<!-- values-table:start (hack/values_table.py writes this part) -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*):(?P<rest>.*)$")


def rows(values_text: str) -> list[tuple[str, str, str]]:
    """(path, default, description) for every key of values.yaml, in file order."""
    values = yaml.safe_load(values_text)
    out: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []
    comment: list[str] = []
    in_list: int | None = None  # indent of the "- " of the list being skipped, if any
    for line in values_text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        indent = len(line) - len(line.lstrip(" "))
        if stripped.startswith("-"):
            in_list = indent if in_list is None else min(in_list, indent)
        match = _KEY.match(line)
        if not match or (in_list is not None and indent > in_list) or stripped.startswith("-"):
            comment = []
            continue
        in_list = None
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        path = ".".join(key for _, key in stack)
        value = lookup(values, [key for _, key in stack])
        default = "" if isinstance(value, dict) and value else f"`{compact(value)}`"
        out.append((path, default, " ".join(comment)))
        comment = []
    return out


def lookup(values: Any, keys: list[str]) -> Any:
    for key in keys:
        values = values[key]
    return values


def compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "))


def table(values_text: str) -> str:
    lines = ["| Key | Default | Description |", "|---|---|---|"]
    for path, default, description in rows(values_text):
        cells = [f"`{path}`", default, description]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def render(readme: str, values_text: str) -> str:
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table(values_text)}\n{END}{after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    args = parser.parse_args()
    current = README.read_text()
    wanted = render(current, VALUES.read_text())
    if args.check:
        if wanted != current:
            print(f"{README} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
