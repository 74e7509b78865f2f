"""The PromQL of the chart's dashboard and alerts, and the metric names it reads.

The names are found by a small scanner rather than a PromQL parser (none is among the
project's locked dependencies): string literals, label matchers ``{...}``, ranges ``[...]``
and grouping clauses ``by (...)`` are blanked out, and every identifier left that is not a
keyword, a function call or part of a number is a metric name. Grafana's variables only
occur inside matchers and ranges, so they vanish with them. ``test_monitoring`` checks the
scanner on expressions of every shape the chart uses.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from .conftest import CHART

DASHBOARD = CHART / "dashboards" / "bulk-termination-operator.json"
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan", "atan2"}  # fmt: skip
# Series Prometheus itself makes for every target; no exporter serves them.
PROMETHEUS_SERIES = {"up"}

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    text = _RANGE.sub(" ", _MATCHERS.sub(" ", _STRING.sub('""', expr)))
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        before = text[match.start() - 1] if match.start() else " "
        after = text[match.end() :].lstrip()
        if before.isdigit() or before == "." or after.startswith("("):
            continue  # an exponent or unit of a number, or a function
        if match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_exprs() -> list[str]:
    """Every query of the dashboard: panel targets and the variables' label_values()."""
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        query = var.get("query")
        if isinstance(query, dict):
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", query["query"])
            assert inner, query
            exprs.append(inner.group(1))
    return exprs


def rendered_rules(helm_bin: Path) -> list[dict[str, Any]]:
    """The PrometheusRule's rules as `helm template` renders them."""
    proc = subprocess.run(
        [str(helm_bin), "template", "bt", str(CHART), "--namespace", "bulkterm-system",
         "--set", "prometheusRule.enabled=true", "--show-only", "templates/prometheusrule.yaml"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    (rule,) = [d for d in yaml.safe_load_all(proc.stdout) if d]
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]
