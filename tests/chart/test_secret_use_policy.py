"""The chart's admission policy for Secret use is the one the operator checks for
(:func:`bulkterm.k8s.secret_use.policy_manifests`), and the operator may read it, and only it."""

from __future__ import annotations

from typing import Any

import pytest

from bulkterm.k8s.secret_use import policy_manifests
from tests.chart.conftest import Helm, Rendering, rbac_rules

pytestmark = pytest.mark.helm

POLICY_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def of_kind(rendering: Rendering, kind: str) -> list[dict[str, Any]]:
    return [d for d in rendering.docs if d.get("kind") == kind]


def test_the_rendered_policy_and_binding_are_the_ones_the_operator_checks_for(
    rendered: Rendering,
) -> None:
    (policy,) = of_kind(rendered, POLICY_KINDS[0])
    (binding,) = of_kind(rendered, POLICY_KINDS[1])
    expected_policy, expected_binding = policy_manifests()
    assert policy["spec"] == expected_policy["spec"]
    assert binding["spec"] == {**expected_binding["spec"], "policyName": policy["metadata"]["name"]}
    assert binding["metadata"]["name"] == policy["metadata"]["name"]


def test_the_operator_is_told_the_policy_s_name_and_may_read_only_that_one(
    rendered: Rendering,
) -> None:
    (policy,) = of_kind(rendered, POLICY_KINDS[0])
    name = policy["metadata"]["name"]
    env = {e["name"]: e.get("value") for e in rendered.container.get("env", [])}
    assert env["BULKTERM_ADMISSION_POLICY"] == env["BULKTERM_ADMISSION_BINDING"] == name
    reads = [
        rule
        for _, rule in rbac_rules(rendered.docs, "ClusterRole", "Role")
        if rule.get("apiGroups") == ["admissionregistration.k8s.io"]
    ]
    assert sorted(r["resources"][0] for r in reads) == [
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
    ]
    assert all(r["verbs"] == ["get"] and r["resourceNames"] == [name] for r in reads)


def test_a_policy_kept_elsewhere_is_read_by_its_name_and_not_rendered(helm: Helm) -> None:
    values = {"secretUse": {"admissionPolicy": {"create": False, "name": "shared-admission"}}}
    proc = helm.template_with("shared-policy", values)
    assert proc.returncode == 0, proc.stderr
    assert "kind: ValidatingAdmissionPolicy" not in proc.stdout
    assert 'resourceNames: ["shared-admission"]' in proc.stdout
    assert 'value: "shared-admission"' in proc.stdout


def test_name_grants_are_off_unless_asked_for(rendered: Rendering, helm: Helm) -> None:
    env = {e["name"] for e in rendered.container.get("env", [])}
    assert "BULKTERM_ALLOW_NAME_GRANTS" not in env
    proc = helm.template_with("name-grants", {"secretUse": {"allowNameGrants": True}})
    assert proc.returncode == 0, proc.stderr
    assert "BULKTERM_ALLOW_NAME_GRANTS" in proc.stdout


def test_only_admin_is_given_use_on_secrets_by_aggregation(rendered: Rendering) -> None:
    users = [
        (role, rule)
        for role, rule in rbac_rules(rendered.docs, "ClusterRole")
        if "use" in rule["verbs"]
    ]
    if not any(
        "aggregate-to-admin" in k
        for d in of_kind(rendered, "ClusterRole")
        for k in d["metadata"].get("labels", {})
    ):
        assert users == []
        return
    assert len(users) == 1
    role, rule = users[0]
    labels = role["metadata"]["labels"]
    assert labels.get("rbac.authorization.k8s.io/aggregate-to-admin") == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-edit" not in labels
    assert rule == {"apiGroups": [""], "resources": ["secrets"], "verbs": ["use"]}
