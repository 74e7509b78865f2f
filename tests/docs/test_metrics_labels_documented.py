"""The documented metrics carry the labels and types the operator serves.

tests/test_metrics_documented.py checks that the README's metrics table and docs/helm.md's
list name exactly the served series; here, what they say about each: the README's type column
and the label names of its labels column (the lower-case names in backticks outside
parentheses; values and explanations stand inside them or in other words), and the labels
docs/helm.md gives in braces (`bulkterm_aiapi_calls_total{endpoint,outcome}`)."""

from __future__ import annotations

import re

import pytest

from bulkterm import metrics
from tests.docs.test_limits_table import table
from tests.plugins.helm import ROOT

NAME = re.compile(r"`(bulkterm_[a-z0-9_]+)")


def served() -> dict[str, tuple[str, set[str]]]:
    """Series name (counters with ``_total``) -> (type, label names)."""
    found = {}
    for collector in metrics.REGISTRY._collector_to_names:  # the metrics, before any sample
        family = getattr(collector, "_name", None)
        kind = getattr(collector, "_type", None)
        if not family or not str(family).startswith("bulkterm_"):
            continue
        name = f"{family}_total" if kind == "counter" else str(family)
        found[name] = (str(kind), set(getattr(collector, "_labelnames", ())))
    return found


def outside_parentheses(text: str) -> str:
    depth, kept = 0, []
    for char in text:
        depth += char == "("
        if depth == 0:
            kept.append(char)
        depth -= char == ")" and depth > 0
    return "".join(kept)


def readme_rows() -> list[dict[str, str]]:
    section = ROOT.joinpath("README.md").read_text().split("\n## Metrics\n", 1)[1]
    return table(section, "| metric | type | labels |")


@pytest.mark.parametrize("row", readme_rows(), ids=lambda r: NAME.findall(r["metric"])[0])
def test_the_readme_gives_each_metric_its_type_and_labels(row: dict[str, str]) -> None:
    names = NAME.findall(row["metric"])
    types = [t.strip() for t in row["type"].split(",")]
    labels = set(re.findall(r"`([a-z][a-z_]*)`", outside_parentheses(row["labels"])))
    series = served()
    assert types == [series[name][0] for name in names], row
    for name in names:
        assert series[name][1] == labels, (name, row["labels"])


def test_the_helm_doc_gives_each_metric_the_labels_it_has() -> None:
    text = ROOT.joinpath("docs", "helm.md").read_text()
    paragraph = text.split("The metrics (`operator/bulkterm/metrics.py`", 1)[1].split("\n\n", 1)[0]
    series = served()
    given = re.findall(r"`(bulkterm_[a-z0-9_]+)\{([a-z_,]+)\}`", paragraph)
    assert given
    wrong = [(name, labels) for name, labels in given
             if not set(labels.split(",")) <= series[name][1]]  # fmt: skip
    assert wrong == []
