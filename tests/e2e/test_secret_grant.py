"""The confused deputy, on a real API server: a user who may create BulkTerminations but not
read Secrets cannot make the operator use a Secret its owner did not grant.

The user is ``alice``, impersonated with kubectl's ``--as`` (the admin certificate may
impersonate), bound to a Role with nothing but ``create`` and ``get`` on BulkTerminations. The
operator runs as the chart's ServiceAccount, which may ``get`` every Secret of the namespace,
so only the grant (the Secret's annotation ``aiapi.bulkops.dev/allowed-bulkterminations``)
stands between alice and another team's service key.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.kubeapi import GRANT_ANNOTATION
from bulkterm.k8s.secret_bounds import TARGET_STATUSES
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import OperatorProcess, bulk_termination, has_condition, secret
from tests.kube import Kube, condition

pytestmark = pytest.mark.e2e
BT = "bulkterminations"
USER = "alice"
SECRET = "aicore-service-key"


@pytest.fixture
def alice(kube: Kube, namespace: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """kubectl as ``alice``, who may only create and get BulkTerminations in ``namespace``."""
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "bulktermination-author", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["aiapi.bulkops.dev"],
                    "resources": ["bulkterminations"],
                    "verbs": ["create", "get"],
                }
            ],
        }
    )
    kube.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "alice-authors", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "bulktermination-author",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}],
        }
    )

    def kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return kube.kubectl("--as", USER, "-n", namespace, *args, input=input)

    return kubectl


@pytest.fixture
def operator(make_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """The operator, retrying stalled runs every 0.5 s so a new grant is noticed quickly."""
    return make_operator(env={"BULKTERM_STALLED_RETRY_SECONDS": "0.5"}).start()


def create_as(
    kubectl: Callable[..., subprocess.CompletedProcess[str]], obj: dict[str, Any]
) -> None:
    created = kubectl("create", "-f", "-", input=yaml.safe_dump(obj))
    assert created.returncode == 0, created.stderr


def cannot_read_the_secret(kubectl: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    got = kubectl("get", "secret", SECRET, "-o", "json")
    assert got.returncode != 0 and "forbidden" in got.stderr.lower(), got.stdout + got.stderr
    assert kubectl("auth", "can-i", "get", f"secret/{SECRET}").stdout.strip() == "no"


def test_an_ungranted_secret_stalls_a_user_s_bulktermination_until_its_owner_grants_it(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    operator: OperatorProcess,
    alice: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-other-team", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key(), SECRET, grant=None))
    cannot_read_the_secret(alice)

    create_as(
        alice, bulk_termination(namespace, "borrow", ("Deployment", "dep-other-team", "DELETED"))
    )
    obj = kube.wait_for(BT, "borrow", has_condition("Stalled"), namespace=namespace, timeout=30)
    stalled = condition(obj, "Stalled")
    assert stalled is not None and stalled["reason"] == "SecretNotGranted"
    assert f"Secret {namespace}/{SECRET}" in stalled["message"]
    assert GRANT_ANNOTATION in stalled["message"]
    # The AI API heard nothing: not even a token request was made with the key.
    assert sum(sim.counters.values()) == 0
    assert sim.state_of(Kind.DEPLOYMENT, "dep-other-team") is Status.RUNNING
    # Alice learns nothing of the key from what she may read, and still may not read it.
    shown = alice("get", "bt", "borrow", "-o", "json")
    assert shown.returncode == 0, shown.stderr
    assert sim.config.client_secret not in shown.stdout
    warnings = [
        e for e in kube.events(namespace=namespace, involved="borrow") if e["type"] == "Warning"
    ]
    assert [e["reason"] for e in warnings] == ["SecretNotGranted"]
    assert sim.config.client_secret not in json.dumps(warnings)
    cannot_read_the_secret(alice)

    # The Secret's owner grants it: the same CR proceeds on its own.
    kube.patch(
        "secrets",
        SECRET,
        {"metadata": {"annotations": {GRANT_ANNOTATION: "*"}}},
        namespace=namespace,
    )
    done = kube.wait_for(BT, "borrow", has_condition("Complete"), namespace=namespace, timeout=60)
    assert done["status"]["succeeded"] == 1
    assert sim.counters["POST /oauth/token"] >= 1
    cannot_read_the_secret(alice)


def test_a_secret_granted_to_other_bulkterminations_does_not_serve_this_one(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    operator: OperatorProcess,
    alice: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-other-team", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key(), SECRET, grant="team-b-nightly, team-b-*"))
    create_as(
        alice, bulk_termination(namespace, "borrow", ("Deployment", "dep-other-team", "STOPPED"))
    )
    obj = kube.wait_for(BT, "borrow", has_condition("Stalled"), namespace=namespace, timeout=30)
    assert condition(obj, "Stalled")["reason"] == "SecretNotGranted"  # type: ignore[index]
    assert sum(sim.counters.values()) == 0
    assert sim.state_of(Kind.DEPLOYMENT, "dep-other-team") is Status.RUNNING


def test_a_secret_granted_by_name_serves_the_bulktermination_it_names(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    operator: OperatorProcess,
    alice: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-mine", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key(), SECRET, grant="nightly-*, cleanup"))
    create_as(alice, bulk_termination(namespace, "cleanup", ("Deployment", "dep-mine", "STOPPED")))
    kube.wait_for(BT, "cleanup", has_condition("Complete"), namespace=namespace, timeout=20)


def test_a_granted_secret_is_not_spent_outside_its_bounds_until_its_owner_widens_them(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    operator: OperatorProcess,
    alice: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    """Granted to every BulkTermination, but for STOP only: alice's DELETE stalls with nothing
    sent, and runs once the Secret's owner allows DELETE too."""
    sim.add_item(Kind.DEPLOYMENT, "dep-stopped", Status.STOPPED)
    bounded = secret(namespace, sim.service_key(), SECRET)
    bounded["metadata"]["annotations"][TARGET_STATUSES] = "STOPPED"
    kube.create(bounded)
    create_as(alice, bulk_termination(namespace, "purge", ("Deployment", "dep-stopped", "DELETED")))
    obj = kube.wait_for(BT, "purge", has_condition("Stalled"), namespace=namespace, timeout=30)
    stalled = condition(obj, "Stalled")
    assert stalled is not None and stalled["reason"] == "OutsideSecretBounds"
    assert "target status DELETED" in stalled["message"] and TARGET_STATUSES in stalled["message"]
    assert sum(sim.counters.values()) == 0  # not even a token request
    assert sim.state_of(Kind.DEPLOYMENT, "dep-stopped") is Status.STOPPED

    kube.patch(
        "secrets",
        SECRET,
        {"metadata": {"annotations": {TARGET_STATUSES: "STOPPED,DELETED"}}},
        namespace=namespace,
    )
    kube.wait_for(BT, "purge", has_condition("Complete"), namespace=namespace, timeout=60)
    assert sim.item(Kind.DEPLOYMENT, "dep-stopped") is None
