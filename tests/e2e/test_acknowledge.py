"""A finished BulkTermination whose spec changes afterwards acknowledges the new generation
(kstatus, Flux and Argo CD stop waiting) without running again, on the real API server; and a
change while it runs is told as one during the run, never as one "after the run finished".

The CRD refuses every spec change, a reorder of ``spec.targets`` included; these scenarios need
a change that gets through, so they run under the CRD as it was before its order rules (an
older chart's CRD, or one ``crds.enabled=false`` left behind): it let a reorder through."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import (
    OperatorProcess,
    bulk_termination,
    has_condition,
    secret,
    start_deployment_run,
)
from tests.kube import Kube, KubeApiError, condition
from tests.kube.crd import without_order_rules
from tests.plugins.kube import crd_document

BT = "bulkterminations"


def _reorder_refused(kube: Kube, namespace: str) -> bool:
    """Whether the API server refuses a reorder of the probe's targets (a dry run)."""
    targets = kube.get(BT, "probe", namespace=namespace)["spec"]["targets"]
    try:
        kube.request(
            "PATCH",
            kube.path(BT, "probe", namespace=namespace),
            body={"spec": {"targets": list(reversed(targets))}},
            content_type="application/merge-patch+json",
            params={"dryRun": "All"},
        )
    except KubeApiError as refused:
        if refused.status == 422:
            return True
        raise
    return False


def _until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout} s")
        time.sleep(0.2)


@pytest.fixture
def lax_crd(kube: Kube, namespace: str) -> Iterator[None]:
    """The CRD without its order rules, for the test; the CRD as written again afterwards
    (each swap waited for on a probe in a namespace no operator watches)."""
    probe_ns = f"{namespace[:50]}-probe"
    kube.create_namespace(probe_ns)
    probe = bulk_termination(
        probe_ns,
        "probe",
        ("Deployment", "dep-0001", "STOPPED"),
        ("Deployment", "dep-0002", "STOPPED"),
    )
    kube.create(probe)
    strict = crd_document()
    kube.install_crd(without_order_rules(strict))
    try:
        _until(lambda: not _reorder_refused(kube, probe_ns), "the lax CRD in force")
        yield
    finally:
        kube.install_crd(strict)
        _until(lambda: _reorder_refused(kube, probe_ns), "the CRD as written in force again")
        kube.purge(BT, probe_ns)
        kube.delete("namespaces", probe_ns, namespace="")


def _reorder(kube: Kube, namespace: str, name: str) -> int:
    """Reverse ``spec.targets``; returns the new generation."""
    targets = kube.get(BT, name, namespace=namespace)["spec"]["targets"]
    patch = {"spec": {"targets": list(reversed(targets))}}
    return int(kube.patch(BT, name, patch, namespace=namespace)["metadata"]["generation"])


def _events(kube: Kube, namespace: str, name: str, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.events(namespace=namespace, involved=name) if e.get("reason") == reason]


def _wait_for_events(
    kube: Kube, namespace: str, name: str, reason: str, timeout: float = 30
) -> list[dict[str, Any]]:
    """The Events of ``reason`` about ``name``, once there is one: the operator posts them
    after the status write a test may have waited for."""
    deadline = time.monotonic() + timeout
    while not (found := _events(kube, namespace, name, reason)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {reason} Event about {name} within {timeout} s")
        time.sleep(0.2)
    return found


def _observed(generation: int) -> Any:
    return lambda o: o.get("status", {}).get("observedGeneration") == generation


def test_a_reordered_finished_run_acknowledges_and_keeps_its_verdict(
    lax_crd: None, kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    for i in ("dep-0001", "dep-0002"):
        sim.add_item(Kind.DEPLOYMENT, i, Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    targets = [("Deployment", "dep-0001", "STOPPED"), ("Deployment", "dep-0002", "STOPPED")]
    kube.create(bulk_termination(namespace, "done", *targets))
    done = kube.wait_for(BT, "done", has_condition("Complete"), namespace=namespace, timeout=60)
    writes = sum(n for call, n in sim.counters.items() if call.startswith("PATCH"))
    assert _reorder(kube, namespace, "done") == 2

    acked = kube.wait_for(BT, "done", _observed(2), namespace=namespace, timeout=30)
    complete = condition(acked, "Complete")
    assert complete is not None and complete["status"] == "True"
    assert complete["lastTransitionTime"] == condition(done, "Complete")["lastTransitionTime"]  # type: ignore[index]
    assert "changed to generation 2 after the run finished and was ignored" in complete["message"]
    (ignored,) = _wait_for_events(kube, namespace, "done", "SpecChangeIgnored")
    assert "after the run finished" in ignored["message"]
    assert "a BulkTermination runs once" in ignored["message"]
    assert sum(n for call, n in sim.counters.items() if call.startswith("PATCH")) == writes
    annotations = acked["metadata"].get("annotations") or {}
    assert not any("last-handled-configuration" in key for key in annotations)


def test_a_reorder_during_the_run_is_told_as_one_during_the_run(
    lax_crd: None, kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    """The black-box report: a reorder two seconds into a run went through, the run finished
    on the old order, and every condition and a SpecChangeIgnored Event said the spec changed
    *after* the run finished. The run still ends on the spec it started with; what it says
    about the change is now true."""
    start_deployment_run(kube, namespace, sim, "moving", 4, stopping=3.0)
    time.sleep(1.0)
    running = kube.get(BT, "moving", namespace=namespace)
    assert condition(running, "Complete") is None, "the run ended before the change"
    assert _reorder(kube, namespace, "moving") == 2

    done = kube.wait_for(BT, "moving", has_condition("Complete"), namespace=namespace, timeout=60)
    done = kube.wait_for(BT, "moving", _observed(2), namespace=namespace, timeout=30)
    during = "the spec changed to generation 2 while the run was running and was ignored"
    for c in done["status"]["conditions"]:
        assert during in c["message"], c
        assert "after the run finished" not in c["message"], c
        assert c["observedGeneration"] == 2
    assert (
        "the run went on with the spec of generation 1"
        in done["status"]["conditions"][0]["message"]
    )
    (ignored,) = _wait_for_events(kube, namespace, "moving", "SpecChangeIgnored")
    assert during in ignored["message"]
    # The handler for changes after the end looks every second: three looks, no second word.
    time.sleep(3.0)
    messages = [e["message"] for e in _events(kube, namespace, "moving", "SpecChangeIgnored")]
    assert len(messages) == 1 and "after the run finished" not in messages[0]
    assert kube.get(BT, "moving", namespace=namespace)["status"]["observedGeneration"] == 2


def test_a_reorder_during_the_run_is_refused_by_the_crd_as_written(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    ids = start_deployment_run(kube, namespace, sim, "steady", 3, stopping=2.0)
    with pytest.raises(KubeApiError) as refused:
        _reorder(kube, namespace, "steady")
    assert refused.value.status == 422
    assert "the order of spec.targets is immutable" in str(refused.value.body)
    done = kube.wait_for(BT, "steady", has_condition("Complete"), namespace=namespace, timeout=60)
    assert done["metadata"]["generation"] == 1
    assert done["status"]["observedGeneration"] == 1
    assert [t["id"] for t in done["spec"]["targets"]] == ids
    assert "spec changed" not in condition(done, "Complete")["message"]  # type: ignore[index]
