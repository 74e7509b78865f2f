"""``spec.suspend`` on a real API server with the real operator: created suspended, a run
sends nothing until resumed; suspended mid-run, it stops sending at once and goes on from its
record when resumed (``kubectl patch``, as a person or a GitOps commit would)."""

from __future__ import annotations

import time

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import (
    OperatorProcess,
    bulk_termination,
    has_condition,
    secret,
    timings,
)
from tests.k8s.support import ai_api_sends
from tests.kube import Kube, condition

pytestmark = pytest.mark.e2e
BT = "bulkterminations"


def test_created_suspended_it_sends_nothing_until_resumed_then_finishes(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    for i in range(3):
        sim.add_item(Kind.DEPLOYMENT, f"dep-s{i:02d}", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    targets = [("Deployment", f"dep-s{i:02d}", "DELETED") for i in range(3)]
    kube.create(bulk_termination(namespace, "held", *targets, suspend=True))
    obj = kube.wait_for(BT, "held", has_condition("Suspended"), namespace=namespace, timeout=30)
    assert condition(obj, "Ready")["reason"] == "Suspended"  # type: ignore[index]
    assert condition(obj, "Reconciling")["status"] == "False"  # type: ignore[index]
    time.sleep(2.5)  # two poll intervals: still nothing
    assert ai_api_sends(sim) == 0
    assert all(sim.state_of(Kind.DEPLOYMENT, f"dep-s{i:02d}") is Status.RUNNING for i in range(3))

    resumed = kube.kubectl(
        "-n", namespace, "patch", "bt", "held", "--type=merge", "-p", '{"spec":{"suspend":false}}'
    )
    assert resumed.returncode == 0, resumed.stderr
    done = kube.wait_for(BT, "held", has_condition("Complete"), namespace=namespace, timeout=60)
    assert done["status"]["succeeded"] == 3
    assert done["status"]["observedGeneration"] == done["metadata"]["generation"] == 2
    assert condition(done, "Suspended")["status"] == "False"  # type: ignore[index]
    reasons = [e["reason"] for e in kube.events(namespace=namespace, involved="held")]
    assert "SpecChangeIgnored" not in reasons


def test_suspended_mid_run_it_stops_sending_and_resumes_from_its_record(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    """Each deployment takes 3 s to stop and only then can be deleted: the stops are sent,
    the run is suspended, the stops still land and are recorded, but no delete goes out until
    the resume."""
    sim.set_timings(timings(stopping=3.0))
    for i in range(4):
        sim.add_item(Kind.DEPLOYMENT, f"dep-m{i:02d}", Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    targets = [("Deployment", f"dep-m{i:02d}", "DELETED") for i in range(4)]
    kube.create(bulk_termination(namespace, "midway", *targets))
    kube.wait_for(BT, "midway", lambda o: (o.get("status") or {}).get("active", 0) > 0,
                  namespace=namespace, timeout=30)  # fmt: skip
    kube.patch(BT, "midway", {"spec": {"suspend": True}}, namespace=namespace)
    kube.wait_for(BT, "midway", has_condition("Suspended"), namespace=namespace, timeout=30)
    sent_before = ai_api_sends(sim)

    def stopped() -> bool:
        return all(
            sim.state_of(Kind.DEPLOYMENT, f"dep-m{i:02d}") is Status.STOPPED for i in range(4)
        )

    deadline = time.monotonic() + 20
    while not stopped() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stopped()  # the stops sent before the suspension still took effect
    time.sleep(2.5)  # two polls after that: the deletes would be due, and are held back
    assert ai_api_sends(sim) == sent_before
    assert all(sim.item(Kind.DEPLOYMENT, f"dep-m{i:02d}") is not None for i in range(4))

    kube.patch(BT, "midway", {"spec": {"suspend": False}}, namespace=namespace)
    done = kube.wait_for(BT, "midway", has_condition("Complete"), namespace=namespace, timeout=60)
    assert done["status"]["succeeded"] == 4
    assert all(sim.item(Kind.DEPLOYMENT, f"dep-m{i:02d}") is None for i in range(4))
