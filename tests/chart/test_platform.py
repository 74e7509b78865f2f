"""What a platform team sets around the operator: labels on everything, a disruption budget
for the standbys, spreading, extra flags, the aggregated user roles and the chart metadata."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from .conftest import CHART, Helm, Rendering

pytestmark = pytest.mark.helm

FULLNAME = "bt-bulk-termination-operator"
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def test_common_labels_are_on_every_object(rendered: Rendering, helm: Helm) -> None:
    platform = helm.render("platform")
    for doc in platform.docs:
        labels = doc["metadata"].get("labels") or {}
        assert labels.get("team") == "ml-platform", f"{doc['kind']}/{doc['metadata']['name']}"
        assert labels.get("cost-center") == "4711"
    assert rendered.docs  # every variant renders; only "platform" sets commonLabels


def test_common_labels_stay_out_of_selectors(helm: Helm) -> None:
    platform = helm.render("platform")
    assert "team" not in platform.deployment["spec"]["selector"]["matchLabels"]
    assert "team" not in platform.one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert "team" not in platform.one("Service")["spec"]["selector"]


def test_common_labels_and_pod_labels_reach_the_pods(helm: Helm) -> None:
    labels = helm.render("platform").deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "ml-platform"
    assert labels["sidecar.istio.io/inject"] == "false"


def test_pdb_protects_the_standbys_with_several_replicas(helm: Helm) -> None:
    platform = helm.render("platform")
    pdb = platform.one("PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == (platform.deployment["spec"]["selector"]["matchLabels"])
    )


def test_pdb_defaults_to_one_unavailable(helm: Helm) -> None:
    pdb = helm.render("peering").one("PodDisruptionBudget")
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": helm.render("peering").deployment["spec"]["selector"],
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }


@pytest.mark.parametrize("variant_name", ["default", "namespaced", "ttl"])
def test_no_pdb_with_one_replica(helm: Helm, variant_name: str) -> None:
    assert helm.render(variant_name).of_kind("PodDisruptionBudget") == []


def test_pdb_can_be_switched_off(helm: Helm) -> None:
    proc = helm.template_with(
        "no-pdb", {"replicaCount": 2, "podDisruptionBudget": {"enabled": False}}
    )
    assert proc.returncode == 0, proc.stderr
    assert "kind: PodDisruptionBudget" not in proc.stdout


def test_pdb_refuses_both_min_available_and_max_unavailable(helm: Helm) -> None:
    proc = helm.template_with(
        "pdb-both", {"replicaCount": 2, "podDisruptionBudget": {"minAvailable": 1}}
    )
    assert proc.returncode != 0
    assert "not both" in proc.stderr


def test_topology_spread_gets_the_pod_selector_when_it_has_none(helm: Helm) -> None:
    platform = helm.render("platform")
    spec = platform.deployment["spec"]["template"]["spec"]
    (constraint,) = spec["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "topology.kubernetes.io/zone"
    assert constraint["labelSelector"] == platform.deployment["spec"]["selector"]


def test_topology_spread_keeps_a_given_selector(helm: Helm) -> None:
    selector = {"matchLabels": {"app": "other"}}
    constraint = {
        "maxSkew": 2,
        "topologyKey": "kubernetes.io/hostname",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": selector,
    }
    proc = helm.template_with("spread", {"topologySpreadConstraints": [constraint]})
    assert proc.returncode == 0, proc.stderr
    (deployment,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["topologySpreadConstraints"] == [constraint]


def test_extra_args_come_after_the_charts_own_flags(helm: Helm) -> None:
    args = helm.render("platform").container["args"]
    assert args[-1] == "--peering-priority=200"
    assert "--peering=" + FULLNAME in args[:-1]


def test_extra_env_is_appended(helm: Helm) -> None:
    env = helm.render("everything").container["env"]
    assert env[-2:] == [
        {"name": "HTTPS_PROXY", "value": "http://proxy:3128"},
        {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
    ]


def aggregated(rendering: Rendering) -> dict[str, dict[str, Any]]:
    return {
        r["metadata"]["name"]: r
        for r in rendering.of_kind("ClusterRole")
        if any(k.startswith(AGGREGATE) for k in r["metadata"]["labels"])
    }


def _verbs(role: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]
    }


def test_view_role_reads_bulkterminations_and_aggregates_into_view_edit_admin(helm: Helm) -> None:
    view = aggregated(helm.render("default"))[f"{FULLNAME}-view"]
    assert {k: v for k, v in view["metadata"]["labels"].items() if k.startswith(AGGREGATE)} == {
        AGGREGATE + "view": "true",
        AGGREGATE + "edit": "true",
        AGGREGATE + "admin": "true",
    }
    assert _verbs(view) == {
        (res, verb)
        for res in ("bulkterminations", "bulkterminations/status")
        for verb in ("get", "list", "watch")
    }


@pytest.mark.parametrize("role", ["edit", "admin"])
def test_edit_and_admin_roles_may_write_bulkterminations_but_not_status(
    helm: Helm, role: str
) -> None:
    got = aggregated(helm.render("default"))[f"{FULLNAME}-{role}"]
    only_admin = {("secrets", "use"), ("bulkterminations", "approve")} if role == "admin" else set()
    assert (
        _verbs(got)
        == {
            ("bulkterminations", verb)
            for verb in ("create", "update", "patch", "delete", "deletecollection")
        }
        | only_admin
    )
    assert got["metadata"]["labels"][AGGREGATE + "admin"] == "true"
    assert (AGGREGATE + "edit" in got["metadata"]["labels"]) == (role == "edit")


@pytest.mark.parametrize("variant_name", ["default", "namespaced", "everything"])
def test_aggregated_roles_are_on_by_default_in_every_scope(helm: Helm, variant_name: str) -> None:
    names = set(aggregated(helm.render(variant_name)))
    assert {n.rsplit("-", 1)[1] for n in names} == {"view", "edit", "admin"}


def test_aggregated_roles_are_bound_to_nobody(helm: Helm) -> None:
    rendering = helm.render("default")
    bound = {b["roleRef"]["name"] for b in rendering.of_kind("ClusterRoleBinding")}
    assert not bound & set(aggregated(rendering))


def test_aggregated_roles_can_be_switched_off(helm: Helm) -> None:
    assert aggregated(helm.render("no-crds")) == {}


def test_chart_metadata_for_catalogues() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["home"].startswith("https://")
    assert chart["sources"] and all(s.startswith("https://") for s in chart["sources"])
    assert chart["icon"].startswith("https://")
    assert chart["maintainers"] and all(m["name"] for m in chart["maintainers"])
    assert {"sap", "ai-core", "operator"} <= set(chart["keywords"])


BAD_VALUES = [
    pytest.param({"commonLabels": {"team": 5}}, "commonLabels", id="label-not-string"),
    pytest.param({"commonLabels": {"bad key!": "x"}}, "bad key!", id="label-key-invalid"),
    pytest.param({"podLabels": {"a": "x" * 64}}, "podLabels", id="label-value-too-long"),
    pytest.param({"extraArgs": ["standalone"]}, "extraArgs", id="extra-arg-not-a-flag"),
    pytest.param({"extraArgs": "--x"}, "extraArgs", id="extra-args-not-a-list"),
    pytest.param({"podDisruptionBudget": {"minAvailable": "half"}}, "minAvailable", id="pdb-bad"),
    pytest.param({"podDisruptionBudget": {"maxUnavalable": 1}}, "maxUnavalable", id="pdb-typo"),
    pytest.param(
        {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}]},
        "whenUnsatisfiable",
        id="spread-incomplete",
    ),
    pytest.param(
        {
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "z", "whenUnsatisfiable": "Never"}
            ]
        },
        "whenUnsatisfiable",
        id="spread-enum",
    ),
    pytest.param({"rbac": {"aggregateClusterRoles": "yes"}}, "aggregateClusterRoles", id="agg"),
    pytest.param({"grafana": {"dashboard": {"enable": True}}}, "enable", id="dashboard-typo"),
    pytest.param({"prometheusRule": {"enabled": 1}}, "enabled", id="rule-not-bool"),
    pytest.param({"prometheusRule": {"job": 'a"b'}}, "job", id="rule-job-quote"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES)
def test_bad_platform_values_are_refused(helm: Helm, values: dict[str, Any], named: str) -> None:
    proc = helm.template_with("bad-platform", values)
    assert proc.returncode != 0, f"accepted {values}"
    assert "schema" in proc.stderr and named in proc.stderr, proc.stderr
