"""The chart's RBAC is least privilege: exactly the grants the operator needs, nothing more.

Every rendered rule of the operator's roles is flattened into (where, apiGroup, resource,
verb, resourceNames) grants and compared with the complete expected set, so an added verb
fails a test as surely as a missing one. The aggregated view/edit/admin ClusterRoles are for
users, not the operator (bound to nobody by the chart): test_aggregated_roles.py covers them.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import NAMESPACE, RELEASE, VARIANTS, Helm, Rendering, rbac_rules

pytestmark = pytest.mark.helm

GROUP = "aiapi.bulkops.dev"
FULLNAME = f"{RELEASE}-bulk-termination-operator"

Grant = tuple[str, str, str, str, tuple[str, ...]]  # where, group, resource, verb, names


AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-"


def is_aggregated(role: dict[str, Any]) -> bool:
    """A ClusterRole the chart makes for the built-in view/edit/admin roles to aggregate."""
    labels = role["metadata"].get("labels") or {}
    return any(key.startswith(AGGREGATE_LABEL) for key in labels)


def is_for_scrapers(role: dict[str, Any]) -> bool:
    """The ClusterRole <fullname>-metrics-reader: for Prometheus to be bound to, not the operator."""
    return str(role["metadata"]["name"]).endswith("-metrics-reader")


def operator_docs(rendering: Rendering) -> list[dict[str, Any]]:
    return [d for d in rendering.docs if not is_aggregated(d) and not is_for_scrapers(d)]


def grants(rendering: Rendering) -> set[Grant]:
    out: set[Grant] = set()
    for role, rule in rbac_rules(operator_docs(rendering), "ClusterRole", "Role"):
        where = "cluster" if role["kind"] == "ClusterRole" else role["metadata"]["namespace"]
        names = tuple(rule.get("resourceNames", ()))
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((where, group, resource, verb, names))
    return out


#: The run's Lease: read, taken, renewed, released, and listed by the sweep of those left
#: behind (bulkterm.k8s.leases); in the release namespace only, whatever else is watched.
LEASE_VERBS = ("get", "list", "create", "update", "delete")
LEASE_GRANTS: set[Grant] = {
    (NAMESPACE, "coordination.k8s.io", "leases", verb, ()) for verb in LEASE_VERBS
}


def controller_grants(
    where: str, *, ttl: bool = False, secret_names: tuple[str, ...] = ()
) -> set[Grant]:
    expected: set[Grant] = {
        (where, GROUP, "bulkterminations", "list", ()),
        (where, GROUP, "bulkterminations", "watch", ()),
        (where, GROUP, "bulkterminations", "patch", ()),
        (where, GROUP, "bulkterminations/status", "patch", ()),
        (where, "", "secrets", "get", secret_names),
        (where, "", "events", "create", ()),
    }
    if ttl:
        expected.add((where, GROUP, "bulkterminations", "delete", ()))
    return expected


CRD_READ: set[Grant] = {
    ("cluster", "apiextensions.k8s.io", "customresourcedefinitions", verb, ())
    for verb in ("list", "watch")
}


def peering_grants(where: str, resource: str) -> set[Grant]:
    return {
        (where, "kopf.dev", resource, "list", ()),
        (where, "kopf.dev", resource, "watch", ()),
        (where, "kopf.dev", resource, "patch", (FULLNAME,)),
    }


EXPECTED: dict[str, set[Grant]] = {
    "default": CRD_READ | controller_grants("cluster"),
    "metrics": CRD_READ | controller_grants("cluster"),
    "no-metrics": CRD_READ | controller_grants("cluster"),
    "ttl": CRD_READ | controller_grants("cluster", ttl=True),
    "namespaced": controller_grants("team-a") | controller_grants("team-b"),
    "peering": CRD_READ
    | controller_grants("cluster")
    | peering_grants("cluster", "clusterkopfpeerings"),
    "peering-namespaced": (
        controller_grants("team-a")
        | peering_grants("team-a", "kopfpeerings")
        | controller_grants("team-b")
        | peering_grants("team-b", "kopfpeerings")
    ),
    "everything": controller_grants("ml-team", secret_names=("aicore-service-key",)),
    "no-network-policy": CRD_READ | controller_grants("cluster"),
    "hardened": controller_grants("ml-team", secret_names=("aicore-service-key", "aicore-team-b")),
    "secret-names-cluster-wide": CRD_READ
    | controller_grants("cluster", secret_names=("aicore-service-key",)),
    "monitoring": CRD_READ | controller_grants("cluster"),
    "platform": CRD_READ
    | controller_grants("cluster")
    | peering_grants("cluster", "clusterkopfpeerings"),
    "no-crds": CRD_READ | controller_grants("cluster"),
}


#: Reviews of a metrics scraper's token and its right to GET /metrics (metrics.secure).
METRICS_AUTH: set[Grant] = {
    ("cluster", "authentication.k8s.io", "tokenreviews", "create", ()),
    ("cluster", "authorization.k8s.io", "subjectaccessreviews", "create", ()),
}


def secret_use_read(rendering: Rendering) -> set[Grant]:
    """The admission policy that vouches for who may use a Secret, and its binding, read by
    the names the operator is given (cluster-scoped objects, so a ClusterRole)."""
    env = {e["name"]: e.get("value") for e in rendering.container.get("env", [])}
    name = (str(env["BULKTERM_ADMISSION_POLICY"]),)
    group = "admissionregistration.k8s.io"
    return {
        ("cluster", group, "validatingadmissionpolicies", "get", name),
        ("cluster", group, "validatingadmissionpolicybindings", "get", name),
    }


def test_grants_are_exactly_the_expected_ones(rendered: Rendering, variant: str) -> None:
    actual = grants(rendered)
    expected = EXPECTED[variant] | LEASE_GRANTS | secret_use_read(rendered)
    expected |= set() if variant == "no-metrics" else METRICS_AUTH
    assert actual == expected, (
        f"unexpected: {sorted(actual - expected)}\nmissing: {sorted(expected - actual)}"
    )


def test_no_wildcards(rendered: Rendering) -> None:
    for role, rule in rbac_rules(rendered.docs, "ClusterRole", "Role"):
        for key in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
            for item in rule.get(key, []):
                assert "*" not in item, f"{role['kind']}/{role['metadata']['name']}: {key} {item}"


def test_secrets_are_get_only(rendered: Rendering) -> None:
    secret_verbs = {
        verb
        for _, rule in rbac_rules(operator_docs(rendered), "ClusterRole", "Role")
        if "secrets" in rule.get("resources", ())
        for verb in rule["verbs"]
    }
    assert secret_verbs == {"get"}


@pytest.mark.parametrize("variant_name", ["default", "namespaced", "peering", "metrics"])
def test_delete_on_bulkterminations_only_with_ttl(helm: Helm, variant_name: str) -> None:
    def deletes(rendering: Rendering) -> list[Grant]:
        return [g for g in grants(rendering) if g[3] == "delete" and g[2] == "bulkterminations"]

    assert deletes(helm.render(variant_name)) == []
    assert deletes(helm.render("ttl")) == [("cluster", GROUP, "bulkterminations", "delete", ())]


@pytest.mark.parametrize("variant_name", ["namespaced", "peering-namespaced", "everything"])
def test_namespaced_install_grants_nothing_cluster_wide_but_the_metrics_reviews(
    helm: Helm, variant_name: str
) -> None:
    rendering = helm.render(variant_name)
    assert {g for g in grants(rendering) if g[0] == "cluster"} == METRICS_AUTH | secret_use_read(
        rendering
    )
    assert {r["metadata"]["namespace"] for r in rendering.of_kind("Role")} == {
        *VARIANTS[variant_name]["watchNamespaces"],
        NAMESPACE,  # the runs' Leases
    }


def _lease_rules(rendering: Rendering, kind: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (role, rule)
        for role, rule in rbac_rules(rendering.docs, kind)
        if {"leases", "*"} & set(rule.get("resources", ()))
    ]


@pytest.mark.parametrize("variant_name", ["default", "namespaced", "peering", "everything"])
def test_no_cluster_role_grants_leases(helm: Helm, variant_name: str) -> None:
    """Not even with all namespaces watched: a Lease grant there would let the operator write
    every Lease of the cluster (kube-system's leader elections among them)."""
    assert _lease_rules(helm.render(variant_name), "ClusterRole") == []


@pytest.mark.parametrize("variant_name", ["default", "namespaced", "peering", "everything"])
def test_leases_are_granted_by_exactly_one_role_in_the_release_namespace(
    helm: Helm, variant_name: str
) -> None:
    rendering = helm.render(variant_name)
    ((role, rule),) = _lease_rules(rendering, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["metadata"]["name"] == f"{rendering.deployment['metadata']['name']}-leases"
    assert (rule["apiGroups"], sorted(rule["verbs"])) == (
        ["coordination.k8s.io"],
        sorted(LEASE_VERBS),
    )
    (binding,) = [
        b
        for b in rendering.of_kind("RoleBinding")
        if b["roleRef"]["name"] == role["metadata"]["name"]
    ]
    assert binding["metadata"]["namespace"] == NAMESPACE


def test_the_pod_is_told_its_namespace_for_the_leases(rendered: Rendering) -> None:
    (env,) = [e for e in rendered.container["env"] if e["name"] == "POD_NAMESPACE"]
    assert env["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def _subjects_ok(binding: dict[str, Any], sa: str) -> bool:
    expected = [{"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE}]
    return bool(binding["subjects"] == expected)


def test_every_role_is_bound_to_the_operator_service_account(rendered: Rendering) -> None:
    sa_name = rendered.deployment["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {
        (r["kind"], r["metadata"].get("namespace"), r["metadata"]["name"])
        for r in rendered.of_kind("ClusterRole") + rendered.of_kind("Role")
        if not is_aggregated(r) and not is_for_scrapers(r)
    }
    bound = set()
    for binding in rendered.of_kind("ClusterRoleBinding") + rendered.of_kind("RoleBinding"):
        assert _subjects_ok(binding, sa_name), binding
        ref = binding["roleRef"]
        assert ref["apiGroup"] == "rbac.authorization.k8s.io"
        bound.add((ref["kind"], binding["metadata"].get("namespace"), ref["name"]))
    assert bound == roles


def test_rbac_create_false_renders_no_rbac(helm: Helm) -> None:
    proc = helm.template_with("no-rbac", {"rbac": {"create": False}})
    assert proc.returncode == 0, proc.stderr
    assert "kind: ClusterRole" not in proc.stdout and "kind: Role" not in proc.stdout


def test_the_security_doc_lists_what_the_chart_grants() -> None:
    """docs/security.md's table of the operator's grants is written from the rendered chart
    (hack/grants_table.py), so a grant added to the chart cannot be left out of it."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        Path(__file__).resolve().parents[2]
        / "charts/bulk-termination-operator/hack/grants_table.py"
    )
    checked = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, (
        "docs/security.md's grants table is stale: run python "
        f"charts/bulk-termination-operator/hack/grants_table.py\n{checked.stderr}"
    )
