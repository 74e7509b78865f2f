"""``spec.selector`` in the operator, on the real API server: resolved once before any write,
recorded in ``status.selection``, frozen across a restart, schedules paused first, and a
selector that matches too much refused with nothing sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bulkterm.aiapi.models import Kind, ScheduleStatus, Status
from bulkterm.simulator import SimulatorThread
from bulkterm.simulator.manifests import seed_selector
from bulkterm.spec import Selector
from tests.e2e.conftest import (
    OperatorProcess,
    has_condition,
    secret,
    timings,
)
from tests.kube import Kube, condition

BT = "bulkterminations"
SELECTOR: dict[str, Any] = {
    "kind": "Execution",
    "targetStatus": "DELETED",
    "scenarioId": "churn-model",
    "olderThanSeconds": 2_592_000,
    "pauseExecutionSchedules": True,
}


def _selector_cr(namespace: str, name: str, selector: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "aiapi.bulkops.dev/v1alpha1",
        "kind": "BulkTermination",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "connection": {"secretRef": {"name": "aicore-service-key"}},
            "pollIntervalSeconds": 1,
            "selector": selector,
        },
    }


def _seed(sim: SimulatorThread, selector: dict[str, Any]) -> None:
    model = Selector.model_validate(selector)
    seed_selector(sim, model, resource_group="default", now=datetime.now(UTC))


def _writes(sim: SimulatorThread) -> int:
    return sum(n for call, n in sim.counters.items() if call.startswith(("PATCH", "DELETE")))


def test_a_selector_resolves_pauses_its_schedule_and_completes(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    _seed(sim, SELECTOR)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(_selector_cr(namespace, "churn", SELECTOR))
    obj = kube.wait_for(BT, "churn", has_condition("Complete"), namespace=namespace, timeout=60)
    selection = obj["status"]["selection"]
    assert (selection["listed"], selection["selected"], selection["firstIndex"]) == (30, 24, 0)
    assert selection["excluded"] == {"createdTooRecently": 6}
    assert selection["schedulesPaused"] == 1
    assert obj["status"]["succeeded"] == 24
    (schedule,) = sim.execution_schedules()
    assert schedule.status is ScheduleStatus.INACTIVE
    kube.wait_for(  # the Event is posted after the status write it goes with
        BT,
        "churn",
        lambda _: any(
            e.get("reason") == "Selected"
            for e in kube.events(namespace=namespace, involved="churn")
        ),
        namespace=namespace,
        timeout=30,
    )


def test_a_restart_keeps_the_selection_made_at_the_start(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    operator: OperatorProcess,
) -> None:
    sim.set_timings(timings(stopping=3.0, deletion=3.0))
    selector = {**SELECTOR, "pauseExecutionSchedules": False}
    _seed(sim, selector)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(_selector_cr(namespace, "frozen", selector))
    kube.wait_for(
        BT,
        "frozen",
        lambda o: o.get("status", {}).get("active", 0) > 0,
        namespace=namespace,
        timeout=30,
    )
    operator.kill()
    # A new execution that matches the selector appears while the operator is down.
    sim.add_item(
        Kind.EXECUTION,
        "elatecomer000000",
        Status.RUNNING,
        configuration_id="churn-model-config",
        scenario_id="churn-model",
        executable_id="churn-model-exec",
        created_at=datetime.now(UTC) - timedelta(days=60),
    )
    operator.start()
    obj = kube.wait_for(BT, "frozen", has_condition("Complete"), namespace=namespace, timeout=60)
    assert obj["status"]["total"] == obj["status"]["succeeded"] == 24
    latecomer = sim.item(Kind.EXECUTION, "elatecomer000000")
    assert latecomer is not None and latecomer.status is Status.RUNNING


def test_a_selector_matching_more_than_max_targets_fails_with_nothing_sent(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    selector = {**SELECTOR, "maxTargets": 10}
    _seed(sim, selector)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(_selector_cr(namespace, "too-broad", selector))
    obj = kube.wait_for(BT, "too-broad", has_condition("Failed"), namespace=namespace, timeout=30)
    failed = condition(obj, "Failed")
    assert failed is not None and failed["reason"] == "SelectorMatchedTooMany"
    assert "matched 24 items, more than its maxTargets of 10" in failed["message"]
    assert _writes(sim) == 0
