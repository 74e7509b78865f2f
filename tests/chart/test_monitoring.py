"""The monitoring objects as the chart renders them: the ServiceMonitor and the RBAC of the
HTTPS metrics endpoint, the Grafana dashboard and the PrometheusRule.

That every metric the dashboard and the rules read is served by a running operator, to a
scraper bound to the chart's metrics-reader ClusterRole and to nobody else, is checked in
tests/e2e/test_monitoring.py; here: what they are made of, and the scanner that finds the
metric names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import NAMESPACE, Helm, Rendering
from .promql import DASHBOARD, dashboard, dashboard_exprs, metric_names, rendered_rules

pytestmark = pytest.mark.helm

ALERTS = {
    "BulkTerminationOperatorDown",
    "BulkTerminationKubeAPIUnreachable",
    "BulkTerminationSecretUseUnverified",
    "BulkTerminationStalled",
    "BulkTerminationTargetFailures",
    "BulkTerminationAIAPIErrors",
    "BulkTerminationAIAPIAuthFailures",
    "BulkTerminationStatusWriteFailures",
    "BulkTerminationNoActiveReplica",
    "BulkTerminationReconcileErrors",
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
        "bulkterm_reconcile_total",
        "bulkterm_reconcile_duration_seconds_bucket",
        "bulkterm_kube_requests_total",
        "bulkterm_active_replica",
        "bulkterm_build_info",
        "bulkterm_stalled_bulkterminations",
        "up",
    } <= used


# --- the HTTPS metrics endpoint: ServiceMonitor, RBAC, Deployment ----------------------------

TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def render(helm: Helm, name: str, metrics: dict[str, Any]) -> Rendering:
    values = {"metrics": {"serviceMonitor": {"enabled": True}, **metrics}}
    proc = helm.template_with(name, values)
    assert proc.returncode == 0, proc.stderr
    return Rendering(proc.stdout, Path(), [d for d in yaml.safe_load_all(proc.stdout) if d])


def endpoint(rendering: Rendering) -> dict[str, Any]:
    (only,) = rendering.one("ServiceMonitor")["spec"]["endpoints"]
    return only  # type: ignore[no-any-return]


def env_of(rendering: Rendering) -> dict[str, Any]:
    return {e["name"]: e for e in rendering.container.get("env", [])}


def test_the_service_monitor_scrapes_https_with_prometheus_own_token(helm: Helm) -> None:
    scrape = endpoint(render(helm, "sm-default", {}))
    assert scrape["scheme"] == "https"
    assert scrape["bearerTokenFile"] == TOKEN_FILE
    assert "authorization" not in scrape


def test_the_service_monitor_skips_verifying_only_a_self_signed_certificate(helm: Helm) -> None:
    assert endpoint(render(helm, "sm-self-signed", {}))["tlsConfig"] == {"insecureSkipVerify": True}
    scrape = endpoint(render(helm, "sm-cert", {"certificate": {"secretName": "metrics-tls"}}))
    assert scrape["tlsConfig"] == {
        "ca": {"secret": {"name": "metrics-tls", "key": "ca.crt"}},
        "serverName": f"bt-bulk-termination-operator-metrics.{NAMESPACE}.svc",
    }


def test_a_token_secret_is_sent_as_bearer_authorization(helm: Helm) -> None:
    scrape = endpoint(render(helm, "sm-token", {"serviceMonitor": {
        "enabled": True, "tokenSecret": {"name": "prometheus-token"},
    }}))  # fmt: skip
    assert scrape["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "prometheus-token", "key": "token"},
    }
    assert "bearerTokenFile" not in scrape and scrape["scheme"] == "https"


def test_the_plain_http_opt_out_scrapes_http_without_credentials(helm: Helm) -> None:
    rendering = render(helm, "sm-plain", {"secure": False})
    scrape = endpoint(rendering)
    assert scrape["scheme"] == "http"
    assert not {"bearerTokenFile", "authorization", "tlsConfig"} & scrape.keys()
    assert env_of(rendering)["BULKTERM_METRICS_SECURE"]["value"] == "false"
    assert not [r for r in rendering.of_kind("ClusterRole") if "-metrics-" in r["metadata"]["name"]]


def test_secure_metrics_need_no_flag_and_no_certificate_mount_by_default(helm: Helm) -> None:
    rendering = helm.render("default")
    assert not {"BULKTERM_METRICS_SECURE", "BULKTERM_METRICS_CERT_DIR"} & env_of(rendering).keys()
    assert [v["name"] for v in rendering.deployment["spec"]["template"]["spec"]["volumes"]] == [
        "tmp"
    ]


def test_a_certificate_secret_is_mounted_as_the_cert_dir(helm: Helm) -> None:
    rendering = render(helm, "cert-mount", {"certificate": {"secretName": "metrics-tls"}})
    folder = env_of(rendering)["BULKTERM_METRICS_CERT_DIR"]["value"]
    (mount,) = [m for m in rendering.container["volumeMounts"] if m["mountPath"] == folder]
    assert mount["readOnly"] is True and "subPath" not in mount  # a renewal reaches the pod
    (volume,) = [
        v
        for v in rendering.deployment["spec"]["template"]["spec"]["volumes"]
        if v["name"] == mount["name"]
    ]
    assert volume["secret"]["secretName"] == "metrics-tls"
    assert {i["key"] for i in volume["secret"]["items"]} == {"tls.crt", "tls.key"}


def rules_of(rendering: Rendering, name: str) -> list[dict[str, Any]]:
    return rendering.one("ClusterRole", name)["rules"]  # type: ignore[no-any-return]


def test_the_operator_may_review_tokens_and_access_cluster_wide_even_when_namespaced(
    helm: Helm,
) -> None:
    rendering = helm.render("namespaced")
    role = "bt-bulk-termination-operator-metrics-auth"
    assert rules_of(rendering, role) == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"],
         "verbs": ["create"]},
    ]  # fmt: skip
    (binding,) = [
        b for b in rendering.of_kind("ClusterRoleBinding") if b["roleRef"]["name"] == role
    ]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "bt-bulk-termination-operator", "namespace": NAMESPACE}
    ]


def test_the_metrics_reader_role_grants_get_on_metrics_only(helm: Helm) -> None:
    rendering = helm.render("default")
    assert rules_of(rendering, "bt-bulk-termination-operator-metrics-reader") == [
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]}
    ]
    # Bound by the chart only to the readers it is given.
    bindings = {b["metadata"]["name"] for b in rendering.of_kind("ClusterRoleBinding")}
    assert "bt-bulk-termination-operator-metrics-reader" not in bindings


def test_listed_readers_are_bound_to_the_metrics_reader_role(helm: Helm) -> None:
    readers = [
        {"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"},
        {"kind": "Group", "name": "sre"},
    ]
    rendering = render(helm, "readers", {"readers": readers})
    binding = rendering.one("ClusterRoleBinding", "bt-bulk-termination-operator-metrics-reader")
    assert binding["roleRef"]["name"] == "bt-bulk-termination-operator-metrics-reader"
    assert binding["subjects"] == [
        readers[0],
        {"kind": "Group", "name": "sre", "apiGroup": "rbac.authorization.k8s.io"},
    ]


@pytest.mark.parametrize(
    ("metrics", "key"),
    [
        pytest.param({"secure": "yes"}, "secure", id="secure-not-boolean"),
        pytest.param({"readers": [{"kind": "ServiceAccount", "name": "p"}]}, "namespace",
                     id="reader-sa-without-namespace"),
        pytest.param({"readers": [{"kind": "Robot", "name": "p"}]}, "kind", id="reader-kind"),
        pytest.param({"certificate": {"secretName": "Bad_Name"}}, "secretName", id="cert-name"),
        pytest.param({"certificate": {"secret": "x"}}, "secret", id="cert-typo"),
    ],
)  # fmt: skip
def test_bad_metrics_values_fail_naming_the_key(
    helm: Helm, metrics: dict[str, Any], key: str
) -> None:
    proc = helm.template_with("bad-metrics", {"metrics": metrics})
    assert proc.returncode != 0 and key in proc.stderr, proc.stderr
