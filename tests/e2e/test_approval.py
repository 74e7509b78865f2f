"""``spec.requireApproval`` on a real API server with the real operator: the plan and its
digest are written and nothing is sent until the annotation aiapi.bulkops.dev/approved-plan
quotes that digest; an approval of a plan the world has since changed is not honoured; and
only a user RBAC grants the verb ``approve`` may give one (checked at admission)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from bulkterm.spec import APPROVED_PLAN_ANNOTATION
from tests.e2e.conftest import OperatorProcess, bulk_termination, has_condition, role_for, secret
from tests.k8s.support import ai_api_sends
from tests.kube import Kube, condition

pytestmark = pytest.mark.e2e
BT = "bulkterminations"


def awaiting(obj: dict[str, Any]) -> bool:
    ready = condition(obj, "Ready")
    return ready is not None and ready["reason"] == "AwaitingApproval"


def digest_of(kube: Kube, namespace: str, name: str, unlike: str = "") -> str:
    obj = kube.wait_for(
        BT,
        name,
        lambda o: (
            awaiting(o) and ((o["status"].get("plan") or {}).get("digest") or unlike) != unlike
        ),
        namespace=namespace,
        timeout=30,
    )
    return str(obj["status"]["plan"]["digest"])


def approve(kube: Kube, namespace: str, name: str, digest: str, *as_user: str) -> Any:
    return kube.kubectl(
        *as_user, "-n", namespace, "annotate", "--overwrite", "bt", name,
        f"{APPROVED_PLAN_ANNOTATION}={digest}",
    )  # fmt: skip


def test_an_unapproved_run_sends_nothing_and_the_approved_plan_is_what_runs(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-a01", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "dep-a02", Status.STOPPED)
    kube.create(secret(namespace, sim.service_key()))
    targets = [("Deployment", "dep-a01", "STOPPED"), ("Deployment", "dep-a02", "DELETED")]
    kube.create(bulk_termination(namespace, "gated", *targets, requireApproval=True))
    digest = digest_of(kube, namespace, "gated")
    obj = kube.get(BT, "gated", namespace=namespace)
    plan = obj["status"]["plan"]
    assert (plan["stop"], plan["delete"], plan["fail"]) == (1, 1, 0)
    assert digest in condition(obj, "Ready")["message"]  # type: ignore[index]
    time.sleep(2.5)  # two poll intervals
    assert ai_api_sends(sim) == 0

    approved = approve(kube, namespace, "gated", digest)
    assert approved.returncode == 0, approved.stderr
    done = kube.wait_for(BT, "gated", has_condition("Complete"), namespace=namespace, timeout=60)
    assert done["status"]["approvedPlan"] == digest
    assert sim.state_of(Kind.DEPLOYMENT, "dep-a01") is Status.STOPPED
    assert sim.item(Kind.DEPLOYMENT, "dep-a02") is None


def test_an_approval_of_a_plan_the_world_has_changed_is_not_honoured(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-b01", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(
        bulk_termination(
            namespace, "moving", ("Deployment", "dep-b01", "DELETED"), requireApproval=True
        )
    )
    stale = digest_of(kube, namespace, "moving")
    sim.plan_change(Kind.DEPLOYMENT, "dep-b01", 0, Status.STOPPED)  # someone stopped it
    fresh = digest_of(kube, namespace, "moving", unlike=stale)
    approved = approve(kube, namespace, "moving", stale)
    assert approved.returncode == 0, approved.stderr
    obj = kube.wait_for(
        BT,
        "moving",
        lambda o: "a plan that no longer stands" in str(condition(o, "Ready")),
        namespace=namespace,
        timeout=30,
    )
    assert awaiting(obj)
    assert ai_api_sends(sim) == 0

    assert approve(kube, namespace, "moving", fresh).returncode == 0
    kube.wait_for(BT, "moving", has_condition("Complete"), namespace=namespace, timeout=60)
    assert sim.item(Kind.DEPLOYMENT, "dep-b01") is None


def test_only_a_user_granted_approve_may_approve(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    """``patch`` is not enough: the annotation is refused at admission without ``approve``."""
    make_operator().start()
    sim.add_item(Kind.DEPLOYMENT, "dep-c01", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(
        bulk_termination(
            namespace, "guarded", ("Deployment", "dep-c01", "STOPPED"), requireApproval=True
        )
    )
    digest = digest_of(kube, namespace, "guarded")
    editor = {"apiGroups": ["aiapi.bulkops.dev"], "resources": [BT],
              "verbs": ["get", "list", "patch", "update"]}  # fmt: skip
    approver = {"apiGroups": ["aiapi.bulkops.dev"], "resources": [BT], "verbs": ["approve"]}
    erin = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "erin"}
    role_for(kube, namespace, "erin-edits", erin, [editor])

    refused = approve(kube, namespace, "guarded", digest, "--as", "erin")
    assert refused.returncode != 0
    assert f"user erin may not approve the plan of BulkTermination {namespace}/guarded" in (
        refused.stderr
    )
    assert 'needs the verb "approve"' in refused.stderr
    time.sleep(1.5)
    assert ai_api_sends(sim) == 0

    role_for(kube, namespace, "erin-approves", erin, [approver])
    deadline = time.monotonic() + 10
    while (ok := approve(kube, namespace, "guarded", digest, "--as", "erin")).returncode != 0:
        assert time.monotonic() < deadline, ok.stderr  # RBAC reaches the authorizer in moments
        time.sleep(0.3)
    kube.wait_for(BT, "guarded", has_condition("Complete"), namespace=namespace, timeout=60)
    assert sim.state_of(Kind.DEPLOYMENT, "dep-c01") is Status.STOPPED
