"""Who may spend a service key, on a real API server: RBAC's verb ``use`` on the Secret,
checked at admission for the user who creates the BulkTermination; never the name they pick.

The users are impersonated with kubectl's ``--as`` (the admin certificate may impersonate):
``alice``, bound to a Role with nothing but ``create`` and ``get`` on BulkTerminations, and a
ServiceAccount standing for a GitOps pipeline. The operator runs with every Secret of the
namespace readable, so only the admission policy (installed by the ``kube`` fixture as the
chart renders it) stands between alice and another team's service key.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.secret_bounds import MAX_TARGETS, RESOURCE_GROUPS, TARGET_STATUSES
from bulkterm.k8s.secret_use import GRANT_ANNOTATION, AdmissionNames, policy_manifests
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import OperatorProcess, bulk_termination, has_condition, role_for, secret
from tests.kube import Kube, condition

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e
BT = "bulkterminations"
USER = "alice"
SECRET = "aicore-service-key"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


AUTHOR = [
    {"apiGroups": ["aiapi.bulkops.dev"], "resources": [BT], "verbs": ["create", "get"]},
]
USE_THE_KEY = [
    {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [SECRET], "verbs": ["use"]},
]
ALICE = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}


@pytest.fixture
def alice(kube: Kube, namespace: str) -> Kubectl:
    """kubectl as ``alice``, who may only create and get BulkTerminations in ``namespace``."""
    role_for(kube, namespace, "bulktermination-author", ALICE, AUTHOR)

    def kubectl(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return kube.kubectl("--as", USER, "-n", namespace, *args, input=input)

    return kubectl


@pytest.fixture
def operator(make_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    """The operator, retrying stalled runs every 0.5 s so a change is noticed quickly."""
    return make_operator(env={"BULKTERM_STALLED_RETRY_SECONDS": "0.5"}).start()


def create_as(kubectl: Kubectl, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl("create", "-f", "-", input=yaml.safe_dump(obj))


def cannot_read_the_secret(kubectl: Kubectl) -> None:
    got = kubectl("get", "secret", SECRET, "-o", "json")
    assert got.returncode != 0 and "forbidden" in got.stderr.lower(), got.stdout + got.stderr
    assert kubectl("auth", "can-i", "get", f"secret/{SECRET}").stdout.strip() == "no"


def test_a_user_without_use_on_the_secret_cannot_create_a_bulktermination_that_names_it(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess, alice: Kubectl
) -> None:
    """Even where the Secret's old name grant names her resource, and whatever name she picks
    (generateName included): refused at admission, told why, and nothing reaches the AI API."""
    sim.add_item(Kind.DEPLOYMENT, "dep-other-team", Status.RUNNING)
    granted_by_name = secret(namespace, sim.service_key(), SECRET, grant="*")
    kube.create(granted_by_name)
    cannot_read_the_secret(alice)

    named = bulk_termination(namespace, "borrow", ("Deployment", "dep-other-team", "DELETED"))
    generated = bulk_termination(namespace, "x", ("Deployment", "dep-other-team", "DELETED"))
    generated["metadata"] = {"generateName": "nightly-", "namespace": namespace}
    for obj in (named, generated):
        refused = create_as(alice, obj)
        assert refused.returncode != 0
        assert f"user {USER} may not use Secret {namespace}/{SECRET}" in refused.stderr
        assert 'needs the verb "use" on the Secret' in refused.stderr
        assert f"resourceNames: [{SECRET}], verbs: [use]" in refused.stderr
    assert kube.list(BT, namespace=namespace) == []
    time.sleep(1.0)  # the operator had the chance to act on anything that got through
    assert sum(sim.counters.values()) == 0  # not even a token request
    assert sim.state_of(Kind.DEPLOYMENT, "dep-other-team") is Status.RUNNING
    cannot_read_the_secret(alice)


def test_a_user_granted_use_on_the_secret_runs_a_bulktermination_without_reading_it(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess, alice: Kubectl
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-mine", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key(), SECRET))
    role_for(kube, namespace, "alice-uses-the-key", ALICE, USE_THE_KEY)
    assert alice("auth", "can-i", "use", f"secret/{SECRET}").stdout.strip() == "yes"

    created = create_as(
        alice, bulk_termination(namespace, "cleanup", ("Deployment", "dep-mine", "STOPPED"))
    )
    assert created.returncode == 0, created.stderr
    kube.wait_for(BT, "cleanup", has_condition("Complete"), namespace=namespace, timeout=30)
    assert sim.state_of(Kind.DEPLOYMENT, "dep-mine") is Status.STOPPED
    cannot_read_the_secret(alice)
    shown = alice("get", "bt", "cleanup", "-o", "json")
    assert shown.returncode == 0 and sim.config.client_secret not in shown.stdout


def test_a_pipeline_service_account_granted_use_applies_a_bulktermination_that_runs(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    """GitOps: the grant goes to the ServiceAccount that applies the manifests."""
    sim.add_item(Kind.DEPLOYMENT, "dep-gitops", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key(), SECRET))
    kube.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "deployer"}},
                namespace=namespace)  # fmt: skip
    pipeline = {"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}
    role_for(kube, namespace, "deployer-applies", pipeline, AUTHOR + USE_THE_KEY)
    manifest = bulk_termination(namespace, "retire", ("Deployment", "dep-gitops", "DELETED"))
    applied = kube.kubectl(
        "--as", f"system:serviceaccount:{namespace}:deployer", "-n", namespace,
        "create", "-f", "-", input=yaml.safe_dump(manifest),
    )  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    kube.wait_for(BT, "retire", has_condition("Complete"), namespace=namespace, timeout=30)
    assert sim.item(Kind.DEPLOYMENT, "dep-gitops") is None


def test_a_bulktermination_created_before_the_policy_was_in_force_stalls_unverified(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    """Its author's right was never checked, so the operator will not use the Secret for it,
    however long the policy has been in place since."""
    names = AdmissionNames(f"late-{namespace}"[:63], f"late-{namespace}"[:63])
    operator = make_operator(
        env={
            "BULKTERM_ADMISSION_POLICY": names.policy,
            "BULKTERM_ADMISSION_BINDING": names.binding,
            "BULKTERM_STALLED_RETRY_SECONDS": "0.5",
        },
        values={"secretUse": {"admissionPolicy": {"create": False, "name": names.policy}}},
    ).start()
    sim.add_item(Kind.DEPLOYMENT, "dep-early", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key(), SECRET))
    kube.create(bulk_termination(namespace, "early", ("Deployment", "dep-early", "DELETED")))
    obj = kube.wait_for(BT, "early", has_condition("Stalled"), namespace=namespace, timeout=30)
    stalled = condition(obj, "Stalled")
    assert stalled is not None and stalled["reason"] == "SecretUseUnverified"
    assert f"ValidatingAdmissionPolicy {names.policy} is not installed" in stalled["message"]

    made = policy_manifests(names)
    try:
        for manifest in made:
            kube.create(manifest, namespace="")
        obj = kube.wait_for(
            BT,
            "early",
            lambda o: "before the admission policy was in force" in str(condition(o, "Stalled")),
            namespace=namespace,
            timeout=30,
        )
        assert condition(obj, "Stalled")["reason"] == "SecretUseUnverified"  # type: ignore[index]
        assert "delete it and create it again" in condition(obj, "Stalled")["message"]  # type: ignore[index]
        assert sum(sim.counters.values()) == 0
        assert "Secret use cannot be verified" in operator.log()
    finally:
        for kind in ("validatingadmissionpolicybindings", "validatingadmissionpolicies"):
            kube.delete(kind, names.policy, namespace="")


def test_without_the_policy_a_name_grant_serves_only_an_operator_that_allows_name_grants(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    """The weaker, opt-in path for clusters without the policy: the Secret's annotation names
    the BulkTerminations it serves."""
    make_operator(
        env={
            "BULKTERM_ADMISSION_POLICY": "not-installed",
            "BULKTERM_ADMISSION_BINDING": "not-installed",
            "BULKTERM_ALLOW_NAME_GRANTS": "true",
        },
        values={
            "secretUse": {
                "admissionPolicy": {"create": False, "name": "not-installed"},
                "allowNameGrants": True,
            }
        },
    ).start()
    sim.add_item(Kind.DEPLOYMENT, "dep-mine", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "dep-theirs", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key(), SECRET, grant="nightly-*, cleanup"))
    kube.create(bulk_termination(namespace, "cleanup", ("Deployment", "dep-mine", "STOPPED")))
    kube.create(bulk_termination(namespace, "borrow", ("Deployment", "dep-theirs", "STOPPED")))
    kube.wait_for(BT, "cleanup", has_condition("Complete"), namespace=namespace, timeout=30)
    obj = kube.wait_for(BT, "borrow", has_condition("Stalled"), namespace=namespace, timeout=30)
    stalled = condition(obj, "Stalled")
    assert stalled is not None and stalled["reason"] == "SecretNotGranted"
    assert GRANT_ANNOTATION in stalled["message"]
    assert "ValidatingAdmissionPolicy not-installed is not installed" in stalled["message"]
    assert sim.state_of(Kind.DEPLOYMENT, "dep-theirs") is Status.RUNNING


@pytest.mark.parametrize(
    ("bound", "value", "said"),
    [
        (TARGET_STATUSES, "STOPPED", "target status DELETED"),
        (RESOURCE_GROUPS, "team-a-*", "resource group 'default'"),
        (MAX_TARGETS, "1", "more than its"),
    ],
    ids=["delete", "resource-group", "size"],
)
def test_a_bulktermination_outside_the_secret_s_bounds_stalls_with_nothing_sent(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    operator: OperatorProcess,
    bound: str,
    value: str,
    said: str,
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-a01", Status.STOPPED)
    sim.add_item(Kind.DEPLOYMENT, "dep-a02", Status.STOPPED)
    bounded = secret(namespace, sim.service_key(), SECRET)
    bounded["metadata"]["annotations"] = {bound: value}
    kube.create(bounded)
    targets = [("Deployment", "dep-a01", "DELETED"), ("Deployment", "dep-a02", "DELETED")]
    kube.create(bulk_termination(namespace, "purge", *targets))
    obj = kube.wait_for(BT, "purge", has_condition("Stalled"), namespace=namespace, timeout=30)
    stalled = condition(obj, "Stalled")
    assert stalled is not None and stalled["reason"] == "OutsideSecretBounds"
    assert said in stalled["message"] and bound in stalled["message"]
    assert sum(sim.counters.values()) == 0  # not even a token request
    assert sim.state_of(Kind.DEPLOYMENT, "dep-a01") is Status.STOPPED


def test_widening_a_secret_s_bounds_lets_the_stalled_run_proceed(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-stopped", Status.STOPPED)
    bounded = secret(namespace, sim.service_key(), SECRET)
    bounded["metadata"]["annotations"] = {TARGET_STATUSES: "STOPPED"}
    kube.create(bounded)
    kube.create(bulk_termination(namespace, "purge", ("Deployment", "dep-stopped", "DELETED")))
    kube.wait_for(BT, "purge", has_condition("Stalled"), namespace=namespace, timeout=30)
    kube.patch(
        "secrets",
        SECRET,
        {"metadata": {"annotations": {TARGET_STATUSES: "STOPPED,DELETED"}}},
        namespace=namespace,
    )
    kube.wait_for(BT, "purge", has_condition("Complete"), namespace=namespace, timeout=60)
    assert sim.item(Kind.DEPLOYMENT, "dep-stopped") is None

    def warnings() -> list[dict[str, Any]]:
        events = kube.events(namespace=namespace, involved="purge")
        return [e for e in events if e["type"] == "Warning"]

    # The Event is posted after the status write it goes with: wait for it.
    kube.wait_for(BT, "purge", lambda _: bool(warnings()), namespace=namespace, timeout=30)
    assert [e["reason"] for e in warnings()] == ["OutsideSecretBounds"]
    assert sim.config.client_secret not in json.dumps(warnings())


@pytest.mark.namespace("ml-team")
def test_the_example_grant_lets_its_user_and_its_pipeline_create_bulkterminations(
    kube: Kube, namespace: str
) -> None:
    """examples/secret-use.yaml, applied as shipped, grants what it says and nothing more."""
    applied = kube.kubectl("apply", "-f", str(ROOT / "examples" / "secret-use.yaml"))
    assert applied.returncode == 0, applied.stderr
    try:
        role = {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "User",
            "name": "alice@example.com",
        }
        pipeline = {"kind": "ServiceAccount", "name": "argocd-application-controller",
                    "namespace": "argocd"}  # fmt: skip
        for index, subject in enumerate((role, pipeline)):
            role_for(kube, namespace, f"example-author-{index}", subject, AUTHOR)
        for index, who in enumerate(
            ("alice@example.com", "system:serviceaccount:argocd:argocd-application-controller")
        ):
            obj = bulk_termination(
                namespace, f"example-{index}", ("Deployment", "dep-x1", "STOPPED")
            )
            made = kube.kubectl("--as", who, "-n", namespace, "create", "-f", "-",
                                input=yaml.safe_dump(obj))  # fmt: skip
            assert made.returncode == 0, made.stderr
            other = {**obj, "metadata": {"name": f"other-{index}", "namespace": namespace}}
            other["spec"] = {**obj["spec"], "connection": {"secretRef": {"name": "another-key"}}}
            refused = kube.kubectl("--as", who, "-n", namespace, "create", "-f", "-",
                                   input=yaml.safe_dump(other))  # fmt: skip
            assert f"may not use Secret {namespace}/another-key" in refused.stderr
            got = kube.kubectl("--as", who, "-n", namespace, "auth", "can-i", "get",
                               "secret/aicore-service-key")  # fmt: skip
            assert got.stdout.strip() == "no"
    finally:
        kube.kubectl("delete", "-f", str(ROOT / "examples" / "secret-use.yaml"))
        for index in range(2):
            kube.kubectl("-n", namespace, "delete", "role,rolebinding", f"example-author-{index}")
