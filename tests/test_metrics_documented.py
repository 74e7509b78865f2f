"""The documented metrics are exactly the served ones: the README's metrics table and the list
in docs/helm.md name every ``bulkterm_*`` series the registry serves, and nothing else, so a new
metric cannot go undocumented (nor a removed one stay in the docs)."""

from __future__ import annotations

import re
from pathlib import Path

from bulkterm import metrics

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"`(bulkterm_[a-z0-9_]+)[`{]")


def served() -> set[str]:
    """The ``bulkterm_*`` series names the registry serves (counters with ``_total``)."""
    names = set()
    for family in metrics.REGISTRY.collect():
        if family.name.startswith("bulkterm_"):
            names.add(family.name + "_total" if family.type == "counter" else family.name)
    return names


def readme_table() -> set[str]:
    """The names in the first column of the README's metrics table (## Metrics)."""
    section = ROOT.joinpath("README.md").read_text().split("\n## Metrics\n", 1)[1]
    lines = section.split("| metric | type | labels |\n|---|---|---|\n", 1)[1].splitlines()
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append(line)
    return {name for row in rows for name in NAME.findall(row.split("|")[1])}


def helm_doc_list() -> set[str]:
    """The names in docs/helm.md's list of the metrics (the paragraph that introduces them)."""
    text = ROOT.joinpath("docs", "helm.md").read_text()
    paragraph = text.split("The metrics (`operator/bulkterm/metrics.py`", 1)[1].split("\n\n", 1)[0]
    return set(NAME.findall(paragraph))


def test_the_readme_table_lists_exactly_the_served_metrics() -> None:
    assert readme_table() == served()


def test_the_helm_doc_lists_exactly_the_served_metrics() -> None:
    assert helm_doc_list() == served()
