"""Namespace users get BulkTerminations through the built-in roles (rbac.aggregateClusterRoles),
checked by the real API server's authorizer and by real requests made as those users.

No kube-controller-manager runs in the tests, so nothing aggregates ClusterRoles by itself.
:func:`aggregate` does what its clusterrole-aggregation controller does: each ClusterRole with
an aggregationRule gets the rules of every ClusterRole whose labels match one of its selectors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.kube import Kube
from tests.plugins.helm import Release

pytestmark = pytest.mark.helm

CLUSTERROLES = "rbac.authorization.k8s.io/v1/clusterroles"
EDITOR = "erin-the-editor"
VIEWER = "victor-the-viewer"
ADMIN = "ada-the-admin"


def aggregate(kube: Kube) -> None:
    roles = kube.list(CLUSTERROLES, namespace="")
    for role in roles:
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        if not selectors:
            continue
        rules = [
            rule
            for other in roles
            if other["metadata"]["name"] != role["metadata"]["name"]
            and any(
                sel.get("matchLabels", {}).items()
                <= (other["metadata"].get("labels") or {}).items()
                for sel in selectors
            )
            for rule in other.get("rules") or []
        ]
        kube.patch(CLUSTERROLES, role["metadata"]["name"], {"rules": rules}, namespace="")


def bind(kube: Kube, namespace: str, user: str, cluster_role: str) -> None:
    kube.create({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{user}-{cluster_role}", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": cluster_role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    })  # fmt: skip


def allowed(
    kube: Kube,
    user: str,
    verb: str,
    namespace: str,
    group: str = "aiapi.bulkops.dev",
    resource: str = "bulkterminations",
) -> bool:
    review = kube.create({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": user, "resourceAttributes": {
            "group": group, "resource": resource, "verb": verb, "namespace": namespace,
        }},
    })  # fmt: skip
    return bool(review["status"]["allowed"])


def bulk_termination(name: str) -> str:
    return (
        "apiVersion: aiapi.bulkops.dev/v1alpha1\nkind: BulkTermination\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  connection: {secretRef: {name: aicore-service-key}}\n"
        "  targets: [{kind: Deployment, id: dep-0001, targetStatus: STOPPED}]\n"
    )


@pytest.fixture
def users(
    kube: Kube, namespace: str, install_chart: Callable[..., Release]
) -> Iterator[Callable[..., Any]]:
    """The chart installed with its default RBAC, the built-in roles aggregated, an editor and a
    viewer bound in ``namespace``; yields ``as_user(user, *kubectl_args, input=None)``."""
    install_chart(namespace, {"rbac": {"aggregateClusterRoles": True}})  # the chart's default
    aggregate(kube)
    bind(kube, namespace, EDITOR, "edit")
    bind(kube, namespace, VIEWER, "view")
    bind(kube, namespace, ADMIN, "admin")

    def as_user(user: str, *args: str, input: str | None = None) -> Any:
        return kube.kubectl("--as", user, "-n", namespace, *args, input=input)

    yield as_user


def test_a_user_bound_to_edit_spends_a_key_only_once_a_namespace_admin_grants_its_use(
    kube: Kube, namespace: str, users: Callable[..., Any]
) -> None:
    assert allowed(kube, EDITOR, "create", namespace)
    assert not allowed(kube, EDITOR, "use", namespace, "", "secrets")
    refused = users(EDITOR, "apply", "-f", "-", input=bulk_termination("by-editor"))
    assert refused.returncode != 0
    assert f"user {EDITOR} may not use Secret {namespace}/aicore-service-key" in refused.stderr

    # `admin` holds `use` (aggregated), so a namespace admin may hand it on with a Role.
    assert allowed(kube, ADMIN, "use", namespace, "", "secrets")
    role = (
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: use-aicore-key}\n"
        'rules: [{apiGroups: [""], resources: [secrets], resourceNames: [aicore-service-key], '
        "verbs: [use]}]\n"
    )
    granted = users(ADMIN, "apply", "-f", "-", input=role)
    assert granted.returncode == 0, granted.stderr
    bound = users(ADMIN, "create", "rolebinding", "erin-uses-aicore-key",
                  "--role=use-aicore-key", f"--user={EDITOR}")  # fmt: skip
    assert bound.returncode == 0, bound.stderr
    created = users(EDITOR, "apply", "-f", "-", input=bulk_termination("by-editor"))
    assert created.returncode == 0, created.stderr
    deleted = users(EDITOR, "delete", "bt", "by-editor", "--wait=false")
    assert deleted.returncode == 0, deleted.stderr


def test_a_user_bound_to_view_can_read_but_not_create(
    kube: Kube, namespace: str, users: Callable[..., Any]
) -> None:
    assert allowed(kube, VIEWER, "list", namespace)
    assert not allowed(kube, VIEWER, "create", namespace)
    kube.kubectl("apply", "-n", namespace, "-f", "-", input=bulk_termination("seen"), check=True)
    listed = users(VIEWER, "get", "bt", "-o", "name")
    assert listed.returncode == 0, listed.stderr
    assert "seen" in listed.stdout
    refused = users(VIEWER, "apply", "-f", "-", input=bulk_termination("by-viewer"))
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()


def test_the_grants_hold_only_in_the_bound_namespace(
    kube: Kube, namespace: str, users: Callable[..., Any]
) -> None:
    assert not allowed(kube, EDITOR, "create", "default")
    assert not allowed(kube, VIEWER, "list", "default")
