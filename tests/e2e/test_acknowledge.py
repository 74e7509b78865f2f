"""A finished BulkTermination whose spec changes afterwards acknowledges the new generation
(kstatus, Flux and Argo CD stop waiting) without running again, on the real API server."""

from __future__ import annotations

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import OperatorProcess, bulk_termination, has_condition, secret
from tests.kube import Kube, condition

BT = "bulkterminations"


def test_a_reordered_finished_run_acknowledges_and_keeps_its_verdict(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    for i in ("dep-0001", "dep-0002"):
        sim.add_item(Kind.DEPLOYMENT, i, Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    targets = [("Deployment", "dep-0001", "STOPPED"), ("Deployment", "dep-0002", "STOPPED")]
    kube.create(bulk_termination(namespace, "done", *targets))
    done = kube.wait_for(BT, "done", has_condition("Complete"), namespace=namespace, timeout=60)
    writes = sum(n for call, n in sim.counters.items() if call.startswith("PATCH"))
    reordered = list(reversed(done["spec"]["targets"]))
    assert (
        kube.patch(BT, "done", {"spec": {"targets": reordered}}, namespace=namespace)["metadata"][
            "generation"
        ]
        == 2
    )

    acked = kube.wait_for(
        BT,
        "done",
        lambda o: o.get("status", {}).get("observedGeneration") == 2,
        namespace=namespace,
        timeout=30,
    )
    complete = condition(acked, "Complete")
    assert complete is not None and complete["status"] == "True"
    assert complete["lastTransitionTime"] == condition(done, "Complete")["lastTransitionTime"]  # type: ignore[index]
    assert "changed to generation 2 after the run finished and was ignored" in complete["message"]
    events = kube.events(namespace=namespace, involved="done")
    reasons = [e.get("reason") for e in events]
    assert "SpecChangeIgnored" in reasons
    (ignored,) = [e for e in events if e.get("reason") == "SpecChangeIgnored"]
    assert "a BulkTermination runs once" in ignored["message"]
    assert sum(n for call, n in sim.counters.items() if call.startswith("PATCH")) == writes
    annotations = acked["metadata"].get("annotations") or {}
    assert not any("last-handled-configuration" in key for key in annotations)
