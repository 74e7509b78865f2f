"""The Grafana dashboard and the PrometheusRule as the chart renders them.

That every metric they read is served by a running operator is checked in
tests/e2e/test_monitoring.py; here: what they are made of, and the scanner that finds the
metric names.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from .conftest import Helm
from .promql import DASHBOARD, dashboard, dashboard_exprs, metric_names, rendered_rules

pytestmark = pytest.mark.helm

ALERTS = {
    "BulkTerminationOperatorDown",
    "BulkTerminationKubeAPIUnreachable",
    "BulkTerminationStalled",
    "BulkTerminationTargetFailures",
    "BulkTerminationAIAPIErrors",
    "BulkTerminationAIAPIAuthFailures",
    "BulkTerminationStatusWriteFailures",
}


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (le, endpoint) (rate(a_bucket{job=~"$job", x="y{z}"}[$__rate_interval]))',
         {"a_bucket"}),
        ("histogram_quantile(0.95, b) > 1e+06 offset 5m", {"b"}),
        ("x / on(pod) group_left(node) y unless z == bool 0", {"x", "y", "z"}),
        ('absent(up{job="j"} == 1)', {"up"}),
        ("min_over_time(m:rate5m[3h:1m])", {"m:rate5m"}),
    ],
)  # fmt: skip
def test_metric_name_scanner_finds_exactly_the_metrics(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_alerts_are_the_documented_ones(helm_bin: Path) -> None:
    assert {r["alert"] for r in rendered_rules(helm_bin)} == ALERTS


def test_every_alert_has_a_severity_summary_and_description(helm_bin: Path) -> None:
    for rule in rendered_rules(helm_bin):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def test_alerts_select_the_release_namespace_and_job(helm_bin: Path) -> None:
    for rule in rendered_rules(helm_bin):
        assert 'job="bulk-termination-operator", namespace="bulkterm-system"' in rule["expr"]


def test_prometheus_rule_honours_namespace_labels_and_job(helm: Helm) -> None:
    proc = helm.template_with(
        "rule-opts",
        {"prometheusRule": {"enabled": True, "namespace": "monitoring",
                            "labels": {"release": "prom"}, "job": "custom"}},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (rule,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "PrometheusRule"]
    assert rule["metadata"]["namespace"] == "monitoring"
    assert rule["metadata"]["labels"]["release"] == "prom"
    assert 'job="custom"' in rule["spec"]["groups"][0]["rules"][0]["expr"]


def test_monitoring_objects_are_off_by_default(helm: Helm) -> None:
    kinds = {d["kind"] for d in helm.render("default").docs}
    assert "PrometheusRule" not in kinds and "ConfigMap" not in kinds


def test_dashboard_configmap_carries_the_json_and_the_sidecar_label(helm: Helm) -> None:
    configmap = helm.render("monitoring").one("ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Ops"}
    shipped = configmap["data"]["bulk-termination-operator.json"]
    assert json.loads(shipped) == json.loads(DASHBOARD.read_text())


def test_dashboard_picks_its_data_source_namespace_and_job() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert {"namespace", "job"} <= set(variables)
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job", namespace=~"$namespace"' in target["expr"], panel["title"]


def test_dashboard_panels_have_unique_ids_and_descriptions() -> None:
    panels = dashboard()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    assert all(p.get("description") for p in panels if p["type"] != "row")


def test_dashboard_and_alerts_read_the_operators_core_metrics(helm_bin: Path) -> None:
    used = {n for e in dashboard_exprs() for n in metric_names(e)}
    used |= {n for r in rendered_rules(helm_bin) for n in metric_names(r["expr"])}
    assert {
        "bulkterm_active_bulkterminations",
        "bulkterm_targets_total",
        "bulkterm_aiapi_calls_total",
        "bulkterm_kube_reachable",
        "up",
    } <= used
