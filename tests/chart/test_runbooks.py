"""Every alert links its runbook: a ``runbook_url`` annotation pointing at a section of
docs/runbooks.md that exists (GitHub's anchor of a heading), under the base URL the values
give (default: the chart's home)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from .conftest import CHART, Helm
from .promql import rendered_rules

pytestmark = pytest.mark.helm

RUNBOOKS = CHART.parents[1] / "docs" / "runbooks.md"


def anchors(markdown: str) -> set[str]:
    """GitHub's anchors of the headings: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def home() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["home"])


def test_every_alert_links_a_runbook_section_that_exists(helm_bin: Path) -> None:
    sections = anchors(RUNBOOKS.read_text())
    base = f"{home()}/blob/main/docs/runbooks.md#"
    for rule in rendered_rules(helm_bin):
        url = rule["annotations"].get("runbook_url", "")
        assert url.startswith(base), (rule["alert"], url)
        assert url.removeprefix(base) in sections, (rule["alert"], url)


def test_every_alert_has_a_runbook_of_its_own(helm_bin: Path) -> None:
    urls = [rule["annotations"]["runbook_url"] for rule in rendered_rules(helm_bin)]
    assert len(set(urls)) == len(urls)


def test_each_runbook_says_what_it_means_how_to_confirm_and_what_to_do() -> None:
    text = RUNBOOKS.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert sections
    for section in sections:
        title = section.splitlines()[0]
        for part in ("**Means.**", "**Confirm.**", "**Do.**"):
            assert part in section, (title, part)
        assert "kubectl" in section or "promql" in section, title


def test_the_runbook_base_url_is_a_value(helm: Helm) -> None:
    proc = helm.template_with(
        "runbooks",
        {"prometheusRule": {"enabled": True, "runbookBaseUrl": "https://git.example.com/ops/bt/"}},
    )
    assert proc.returncode == 0, proc.stderr
    (rule,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "PrometheusRule"]
    urls = {r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert all(u.startswith("https://git.example.com/ops/bt/docs/runbooks.md#") for u in urls)


def test_the_anchor_of_a_heading_is_githubs() -> None:
    assert anchors("## BulkTerminationOperatorDown\n### Who may scrape: `x`\n") == {
        "bulkterminationoperatordown",
        "who-may-scrape-x",
    }
