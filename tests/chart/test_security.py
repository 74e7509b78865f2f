"""What the chart exposes and what it reaches: the NetworkPolicy in front of the operator's two
ports, the metrics bind address, the custom CA bundle, and Secret access narrowed by name.
Bad values for any of them fail `helm template` with the key named (docs/security.md)."""

from __future__ import annotations

from typing import Any

import pytest

from bulkterm.k8s.config import OperatorConfig

from .conftest import NAMESPACE, Helm, Rendering, rbac_rules
from .test_rbac import is_aggregated

pytestmark = pytest.mark.helm

MONITORING = {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}


def policy(rendering: Rendering) -> dict[str, Any]:
    return rendering.one("NetworkPolicy")["spec"]  # type: ignore[no-any-return]


def ingress_by_port(spec: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Each ingress rule, keyed by its one port."""
    rules: dict[int, dict[str, Any]] = {}
    for rule in spec["ingress"]:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        rules[port["port"]] = rule
    return rules


def env_of(rendering: Rendering) -> dict[str, Any]:
    return {e["name"]: e for e in rendering.container.get("env", [])}


# --- NetworkPolicy ------------------------------------------------------------------------


def test_network_policy_is_on_by_default_and_selects_the_operator_pods(helm: Helm) -> None:
    rendering = helm.render("default")
    spec = policy(rendering)
    pod_labels = rendering.deployment["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert rendering.one("NetworkPolicy")["metadata"]["namespace"] == NAMESPACE


def test_metrics_are_admitted_only_from_the_monitoring_namespace_by_default(helm: Helm) -> None:
    rules = ingress_by_port(policy(helm.render("default")))
    assert rules[9090]["from"] == [{"namespaceSelector": MONITORING}]


def test_the_health_port_is_open_to_the_kubelet_s_probes_from_any_source(helm: Helm) -> None:
    rules = ingress_by_port(policy(helm.render("default")))
    assert "from" not in rules[8080]  # no `from`: every source, as the node's address varies


def test_no_port_but_health_and_metrics_is_admitted(rendered: Rendering) -> None:
    if not rendered.of_kind("NetworkPolicy"):
        pytest.skip("this variant turns the NetworkPolicy off")
    ports = {p["containerPort"] for p in rendered.container["ports"]}
    assert set(ingress_by_port(policy(rendered))) == ports


def test_egress_is_left_open_unless_rules_are_given(helm: Helm) -> None:
    spec = policy(helm.render("default"))
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec


def test_egress_rules_restrict_egress_to_them(helm: Helm) -> None:
    spec = policy(helm.render("hardened"))
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"][1] == {
        "to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}],
        "ports": [{"port": 443}],
    }


def test_metrics_and_health_sources_are_configurable_and_replace_the_defaults(
    helm: Helm,
) -> None:
    rules = ingress_by_port(policy(helm.render("hardened")))
    assert rules[9090]["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"team": "observability"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]
    assert rules[8080]["from"] == [{"ipBlock": {"cidr": "10.0.0.0/16"}}]


def test_the_policy_follows_port_overrides(helm: Helm) -> None:
    assert set(ingress_by_port(policy(helm.render("everything")))) == {8081, 9191}


def test_without_metrics_only_the_health_port_is_admitted(helm: Helm) -> None:
    assert set(ingress_by_port(policy(helm.render("no-metrics")))) == {8080}


def test_the_network_policy_can_be_turned_off(helm: Helm) -> None:
    assert helm.render("no-network-policy").of_kind("NetworkPolicy") == []


# --- endpoints and TLS --------------------------------------------------------------------


def test_metrics_listen_on_every_interface_by_default(helm: Helm) -> None:
    assert env_of(helm.render("default"))["BULKTERM_METRICS_ADDRESS"]["value"] == "0.0.0.0"


def test_the_metrics_bind_address_is_configurable(helm: Helm) -> None:
    assert env_of(helm.render("hardened"))["BULKTERM_METRICS_ADDRESS"]["value"] == "127.0.0.1"


def test_no_metrics_address_without_metrics(helm: Helm) -> None:
    assert "BULKTERM_METRICS_ADDRESS" not in env_of(helm.render("no-metrics"))


def test_no_custom_ca_bundle_by_default(helm: Helm) -> None:
    rendering = helm.render("default")
    assert "BULKTERM_CA_BUNDLE" not in env_of(rendering)
    volumes = rendering.deployment["spec"]["template"]["spec"]["volumes"]
    assert [v["name"] for v in volumes] == ["tmp"]


def test_a_ca_bundle_is_mounted_read_only_and_named_in_the_environment(helm: Helm) -> None:
    rendering = helm.render("hardened")
    assert env_of(rendering)["BULKTERM_CA_BUNDLE"]["value"] == "/etc/bulkterm/ca/bundle.pem"
    mounts = {m["name"]: m for m in rendering.container["volumeMounts"]}
    assert mounts["ca-bundle"] == {
        "name": "ca-bundle",
        "mountPath": "/etc/bulkterm/ca",
        "readOnly": True,
    }
    volumes = {v["name"]: v for v in rendering.deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["ca-bundle"]["configMap"] == {
        "name": "corp-ca",
        "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
        "defaultMode": 0o444,
    }


# --- Secrets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "kind"), [("secret-names-cluster-wide", "ClusterRole"), ("hardened", "Role")]
)
def test_secret_names_narrow_the_operator_s_get_in_both_rbac_modes(
    helm: Helm, variant: str, kind: str
) -> None:
    docs = helm.render(variant).docs
    rules = [
        r
        for role, r in rbac_rules(docs, kind)
        if "secrets" in r.get("resources", ()) and not is_aggregated(role)
    ]
    assert rules
    for rule in rules:  # one per watched namespace, or the one ClusterRole
        assert rule["verbs"] == ["get"]
        assert "aicore-service-key" in rule["resourceNames"]


def test_any_secret_name_by_default_but_get_only(helm: Helm) -> None:
    docs = helm.render("default").docs
    rules = [
        r
        for role, r in rbac_rules(docs, "ClusterRole")
        if "secrets" in r.get("resources", ()) and not is_aggregated(role)
    ]
    assert rules == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]


# --- bad values ---------------------------------------------------------------------------

BAD_VALUES = [
    pytest.param({"metrics": {"bindAddress": "localhost"}}, "bindAddress", id="bind-hostname"),
    pytest.param({"metrics": {"bindAddress": "0.0.0.0:9090"}}, "bindAddress", id="bind-with-port"),
    pytest.param({"metrics": {"bindAddress": "256.0.0.1"}}, "bindAddress", id="bind-bad-ipv4"),
    pytest.param({"aiApi": {"caBundle": {"configMap": "Corp_CA"}}}, "configMap", id="ca-name"),
    pytest.param(
        {"aiApi": {"caBundle": {"configMap": "ca", "key": "../etc/x"}}}, "key", id="ca-key-path"
    ),
    pytest.param(
        {"aiApi": {"caBundle": {"configMap": "ca", "key": ".."}}}, "key", id="ca-key-dotdot"
    ),
    pytest.param({"aiApi": {"caBundle": {"configmap": "ca"}}}, "configmap", id="ca-typo"),
    pytest.param({"networkPolicy": {"enabled": "yes"}}, "enabled", id="np-enabled-type"),
    pytest.param({"networkPolicy": {"egress": []}}, "egress", id="np-deny-all-egress"),
    pytest.param(
        {"networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabel": {"a": "b"}}}]}},
        "matchLabel",
        id="np-selector-typo",
    ),
    pytest.param(
        {"networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {"a": 1}}}]}},
        "matchLabels",
        id="np-label-value-type",
    ),
    pytest.param(
        {"networkPolicy": {"metricsFrom": []}}, "metricsFrom", id="np-metrics-from-anywhere"
    ),
    pytest.param(
        {"networkPolicy": {"metrics": {"namespaceSelector": {}}}}, "metrics", id="np-old-shape"
    ),
    pytest.param(
        {"networkPolicy": {"healthFrom": [{"ipblock": {"cidr": "10.0.0.0/8"}}]}},
        "ipblock",
        id="np-peer-typo",
    ),
    pytest.param({"networkPolicy": {"healthFrom": [{}]}}, "healthFrom", id="np-empty-peer"),
    pytest.param(
        {"networkPolicy": {"egress": [{"to": [], "port": [53]}]}}, "port", id="np-egress-typo"
    ),
    pytest.param(
        {"rbac": {"secretResourceNames": [""]}}, "secretResourceNames", id="secret-name-empty"
    ),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES)
def test_bad_security_values_fail_with_the_key_named(
    helm: Helm, values: dict[str, Any], named: str
) -> None:
    proc = helm.template_with("bad-security", values)
    assert proc.returncode != 0, f"accepted bad values {values}"
    assert "schema" in proc.stderr, proc.stderr
    assert named in proc.stderr, proc.stderr


def test_every_bulkterm_variable_the_chart_sets_is_one_the_operator_reads(
    rendered: Rendering,
) -> None:
    read = {f"BULKTERM_{name.upper()}" for name in OperatorConfig.model_fields}
    assert {n for n in env_of(rendered) if n.startswith("BULKTERM_")} <= read


def test_the_operator_accepts_the_metrics_addresses_the_chart_renders(rendered: Rendering) -> None:
    address = env_of(rendered).get("BULKTERM_METRICS_ADDRESS")
    if address is None:
        pytest.skip("metrics are off in this variant")
    assert OperatorConfig(metrics_address=address["value"]).metrics_address == address["value"]
