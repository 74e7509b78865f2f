"""``kubectl bulkterm restore`` after a real operator's run on a real API server: one new
RUNNING deployment per deleted one, from the same configuration; the schedules the run paused
ACTIVE again; a journal ConfigMap owned by the BulkTermination; a second restore creates none."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from bulkterm.aiapi.models import Kind, ScheduleStatus, Status
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import OperatorProcess, bulk_termination, has_condition, secret
from tests.e2e.test_selector import _selector_cr
from tests.kube import Kube
from tests.kube.client import KUBECTL
from tests.plugin_cli.test_kubectl_bulkterm import EXECUTABLE

pytestmark = pytest.mark.e2e
BT = "bulkterminations"
D, E = Kind.DEPLOYMENT, Kind.EXECUTION


def _schedule_status(sim: SimulatorThread, schedule_id: str) -> ScheduleStatus:
    schedule = sim.execution_schedule(schedule_id)
    assert schedule is not None
    return schedule.status


@pytest.fixture
def restore(kube: Kube, tmp_path: Path, sim: SimulatorThread):  # type: ignore[no-untyped-def]
    """``kubectl bulkterm restore …`` with the caller's own AI API key, as a person runs it."""
    key = sim.write_service_key(tmp_path / "key.json")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl-bulkterm").symlink_to(EXECUTABLE)
    env = kube.env(
        PATH=f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", BULKTERM_ALLOW_PLAIN_HTTP="true"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        more = ["--service-key", str(key)] if args[0] == "restore" else []
        command = [KUBECTL, "bulkterm", *args, *more]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    return run


def test_a_restore_after_a_deleting_run_brings_back_each_deployment_once(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess, restore
) -> None:  # type: ignore[no-untyped-def]
    configurations = {"dep-r01": "cfg-serve", "dep-r02": "cfg-serve", "dep-r03": "cfg-chat"}
    for item_id, configuration in configurations.items():
        sim.add_item(D, item_id, Status.RUNNING, configuration_id=configuration)
    kube.create(secret(namespace, sim.service_key()))
    targets = [("Deployment", i, "DELETED") for i in configurations]
    kube.create(bulk_termination(namespace, "retire", *targets))
    done = kube.wait_for(BT, "retire", has_condition("Complete"), namespace=namespace, timeout=60)
    assert done["status"]["restore"]["deployments"] == 3
    assert sim.items(D) == []
    status = restore("status", "retire", "-n", namespace)
    assert (
        "Restorable: 3 deployment(s), 0 execution(s) of 2 configuration(s) recorded "
        "(kubectl bulkterm restore retire)" in " ".join(status.stdout.split())
    )

    first = restore("restore", "retire", "-n", namespace, "--yes")
    assert first.returncode == 0, first.stderr
    assert "create 3 deployments from 2 configuration(s): cfg-chat x1, cfg-serve x2" in first.stdout
    created = dict(
        line.split(" (")[0].removeprefix("Deployment ").split(" → ")
        for line in first.stdout.splitlines()
        if " → " in line
    )
    assert set(created) == set(configurations)
    for old, new in created.items():
        assert sim.item(D, new).configuration_id == configurations[old]  # type: ignore[union-attr]
    deadline = time.monotonic() + 30
    while any(sim.state_of(D, new) is not Status.RUNNING for new in created.values()):
        assert time.monotonic() < deadline, "the new deployments never reached RUNNING"
        time.sleep(0.2)

    journal = kube.get("configmaps", "retire-restore", namespace=namespace)
    owner = journal["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "BulkTermination", "retire", done["metadata"]["uid"],
    )  # fmt: skip
    entries = json.loads(journal["data"]["journal.json"])["entries"]
    assert {e["oldId"]: e["newId"] for e in entries} == created

    second = restore("restore", "retire", "-n", namespace, "--yes")
    assert second.returncode == 0, second.stderr
    assert "left alone, AlreadyRestored: 3" in second.stdout
    assert sim.counters["POST /lm/deployments"] == 3


def test_a_restore_sets_the_schedules_the_run_paused_active_again(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess, restore
) -> None:  # type: ignore[no-untyped-def]
    sim.add_execution_schedule("sched-nightly", configuration_id="cfg-train")
    sim.add_execution_schedule(
        "sched-off", configuration_id="cfg-train", status=ScheduleStatus.INACTIVE
    )
    sim.add_item(E, "exe-n01", Status.RUNNING, configuration_id="cfg-train",
                 execution_schedule_id="sched-nightly")  # fmt: skip
    sim.add_item(E, "exe-n02", Status.RUNNING, configuration_id="cfg-train",
                 execution_schedule_id="sched-off")  # fmt: skip
    kube.create(secret(namespace, sim.service_key()))
    selector = {"kind": "Execution", "targetStatus": "STOPPED", "configurationId": "cfg-train",
                "pauseExecutionSchedules": True}  # fmt: skip
    kube.create(_selector_cr(namespace, "pause-train", selector))
    done = kube.wait_for(
        BT, "pause-train", has_condition("Complete"), namespace=namespace, timeout=60
    )
    assert done["status"]["selection"]["schedulesActive"] == ["sched-nightly"]

    result = restore("restore", "pause-train", "-n", namespace, "--yes")
    assert result.returncode == 0, result.stderr
    assert "left alone, ExecutionsNotAsked: 2" in result.stdout
    assert "ExecutionSchedule sched-nightly set ACTIVE" in result.stdout
    assert _schedule_status(sim, "sched-nightly") is ScheduleStatus.ACTIVE
    assert _schedule_status(sim, "sched-off") is ScheduleStatus.INACTIVE
    assert not [call for call in sim.counters if call == "POST /lm/executions"]


def test_a_run_still_in_progress_is_not_restored(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess, restore
) -> None:  # type: ignore[no-untyped-def]
    sim.add_item(D, "dep-s01", Status.RUNNING, configuration_id="cfg-serve")
    kube.create(secret(namespace, sim.service_key()))
    kube.create(bulk_termination(namespace, "held", ("Deployment", "dep-s01", "STOPPED"),
                                 suspend=True))  # fmt: skip
    result = restore("restore", "held", "-n", namespace, "--yes")
    assert result.returncode == 1
    assert "the run has not finished" in result.stderr
    assert len(sim.items(D)) == 1
