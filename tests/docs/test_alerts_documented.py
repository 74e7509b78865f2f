"""docs/helm.md's table of the chart's alerts is the PrometheusRule the chart renders: every
alert, its severity, and how long it waits (its ``for``, or the window it looks back over), so
that an alert added, renamed or retuned cannot leave the table behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.chart.promql import rendered_rules
from tests.docs.test_limits_table import table
from tests.plugins.helm import ROOT

pytestmark = pytest.mark.helm


def test_the_helm_doc_lists_every_alert_with_its_severity_and_wait(helm_bin: Path) -> None:
    rows = {row["alert"].strip("`"): row for row in
            table(ROOT.joinpath("docs", "helm.md").read_text(), "| alert | severity |")}  # fmt: skip
    rules = {rule["alert"]: rule for rule in rendered_rules(helm_bin)}
    assert sorted(rows) == sorted(rules)
    for name, rule in rules.items():
        row = rows[name]
        assert row["severity"] == rule["labels"]["severity"], name
        waits = {
            f"{m} minutes" for m in re.findall(r"(\d+)m\b", f"{rule.get('for', '')} {rule['expr']}")
        }
        (said,) = re.findall(r"\d+ minutes", row["fires when"])
        assert said in waits, (name, row["fires when"], rule.get("for"), rule["expr"])
