"""The operator as users run it: ``kubectl apply`` a BulkTermination, watch its status.

Every operator here runs as the chart's ServiceAccount with ``watchNamespaces`` set to the
test's namespace (see conftest), on a real kube-apiserver.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import yaml

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from bulkterm.simulator.manifests import seed_targets
from bulkterm.spec import BulkTerminationSpec
from tests.e2e.conftest import (
    ROOT,
    OperatorProcess,
    bulk_termination,
    has_condition,
    secret,
    timings,
    wait_for_first_bulk_patch,
)
from tests.kube import Kube, condition, free_port

pytestmark = pytest.mark.e2e
BT = "bulkterminations"
D, E = Kind.DEPLOYMENT, Kind.EXECUTION


def seed(sim: SimulatorThread, *items: tuple[Kind, str, Status]) -> None:
    for kind, item_id, status in items:
        sim.add_item(kind, item_id, status)


def reasons(kube: Kube, namespace: str, name: str) -> list[str]:
    return [e.get("reason", "") for e in kube.events(namespace=namespace, involved=name)]


def status_writes(kube: Kube, mark: int, name: str) -> list[dict[str, Any]]:
    """The PATCHes of ``/status`` of one BulkTermination the API server logged after ``mark``."""
    return [
        e
        for e in kube.plane.audit_events(mark)
        if e.get("verb") == "patch"
        and e.get("objectRef", {}).get("name") == name
        and e.get("objectRef", {}).get("subresource") == "status"
    ]


def test_mixed_resource_runs_to_complete(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    sim.add_item(D, "dep-unk1", Status.UNKNOWN, hold=True)  # no race with PENDING
    seed(
        sim,
        (D, "dep-run1", Status.RUNNING),
        (D, "dep-stp1", Status.STOPPED),
        (E, "exe-done", Status.COMPLETED),
        (E, "exe-pend", Status.PENDING),
    )
    kube.create(secret(namespace, sim.service_key()))
    kube.create(
        bulk_termination(
            namespace,
            "mixed",
            ("Deployment", "dep-run1", "DELETED"),
            ("Deployment", "dep-unk1", "DELETED"),
            ("Deployment", "dep-stp1", "STOPPED"),
            ("Execution", "exe-done", "DELETED"),
            ("Execution", "exe-pend", "STOPPED"),
        )
    )
    obj = kube.wait_for(BT, "mixed", has_condition("Complete"), namespace=namespace, timeout=60)
    status = obj["status"]
    assert (status["succeeded"], status["failed"], status["progress"]) == (5, 0, "5/5")
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
    assert sim.state_of(E, "exe-pend") == Status.STOPPED
    assert sim.violations == []
    kube.wait_for(
        BT,
        "mixed",
        # Events are posted after the status writes they go with: wait for each asserted.
        lambda _: (
            {"Started", "BatchSubmitted", "Completed"} <= set(reasons(kube, namespace, "mixed"))
        ),
        namespace=namespace,
        timeout=30,
    )


@pytest.mark.namespace("ml-team")
def test_kubectl_apply_of_the_examples_and_kubectl_wait(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    for name in ("small.yaml", "bulktermination.yaml"):
        doc = yaml.safe_load((ROOT / "examples" / name).read_text())
        seed_targets(
            sim, BulkTerminationSpec.model_validate(doc["spec"]).targets, resource_group="default"
        )
    kube.create(secret(namespace, sim.service_key()))
    applied = kube.kubectl(
        "apply",
        "-f",
        str(ROOT / "examples" / "small.yaml"),
        "-f",
        str(ROOT / "examples" / "bulktermination.yaml"),
    )
    assert applied.returncode == 0, applied.stderr
    waited = kube.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Complete",
        "--timeout=90s",
        "bt/stop-two-deployments",
        "bt/retire-q3-workloads",
        timeout=120,
    )
    assert waited.returncode == 0, waited.stderr + operator.log()[-3000:]
    assert waited.stdout.count("condition met") == 2
    got = kube.kubectl("get", "bt", "-n", namespace, "-o", "yaml")
    items = yaml.safe_load(got.stdout)["items"]
    assert {i["status"]["progress"] for i in items} == {"3/3", "120/120"}
    assert sim.violations == []
    described = kube.kubectl("describe", "bt", "stop-two-deployments", "-n", namespace)
    assert described.returncode == 0, described.stderr
    assert "Complete" in described.stdout and "Events:" in described.stdout


def test_failures_end_failed_and_are_listed(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    seed(sim, (D, "dep-run1", Status.RUNNING))
    kube.create(secret(namespace, sim.service_key()))
    kube.create(
        bulk_termination(
            namespace,
            "broken",
            ("Deployment", "dep-run1", "STOPPED"),
            ("Deployment", "dep-gone", "STOPPED"),
        )
    )
    obj = kube.wait_for(BT, "broken", has_condition("Failed"), namespace=namespace, timeout=60)
    assert condition(obj, "Failed")["reason"] == "FailedTargets"  # type: ignore[index]
    assert condition(obj, "Stalled")["status"] == "True"  # type: ignore[index]
    assert [(f["id"], f["reason"]) for f in obj["status"]["failures"]] == [("dep-gone", "NotFound")]
    assert obj["status"]["failedIndexes"] == "1"
    kube.wait_for(
        BT,
        "broken",
        lambda _: "TargetFailed" in reasons(kube, namespace, "broken"),
        namespace=namespace,
        timeout=30,
    )


def test_missing_secret_stalls_then_recovers(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    seed(sim, (D, "dep-run1", Status.RUNNING))
    kube.create(bulk_termination(namespace, "waiting", ("Deployment", "dep-run1", "STOPPED")))
    make_operator(env={"BULKTERM_STALLED_RETRY_SECONDS": "0.5"}).start()
    obj = kube.wait_for(BT, "waiting", has_condition("Stalled"), namespace=namespace, timeout=30)
    assert condition(obj, "Stalled")["reason"] == "SecretNotFound"  # type: ignore[index]
    assert condition(obj, "Reconciling")["status"] == "False"  # type: ignore[index]
    kube.create(secret(namespace, sim.service_key()))
    kube.wait_for(BT, "waiting", has_condition("Complete"), namespace=namespace, timeout=60)
    kube.wait_for(
        BT,
        "waiting",
        lambda _: "SecretNotFound" in reasons(kube, namespace, "waiting"),
        namespace=namespace,
        timeout=30,
    )


def test_bad_credentials_stall_as_unauthorized(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    key = dict(sim.service_key())
    key["clientsecret"] = "wrong-secret-123"
    kube.create(secret(namespace, key))
    kube.create(bulk_termination(namespace, "denied", ("Deployment", "dep-run1", "STOPPED")))
    obj = kube.wait_for(BT, "denied", has_condition("Stalled"), namespace=namespace, timeout=30)
    assert condition(obj, "Stalled")["reason"] == "Unauthorized"  # type: ignore[index]
    everything = str(obj) + str(kube.events(namespace=namespace)) + operator.log()
    assert "wrong-secret-123" not in everything


def test_operator_restart_mid_run_resumes_and_finishes(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    sim.set_timings(timings(stopping=3.0, deletion=1.0))
    targets = [("Deployment", f"dep-{i:04d}", "DELETED") for i in range(40)]
    seed(sim, *[(D, i, Status.RUNNING) for _, i, _ in targets])
    kube.create(secret(namespace, sim.service_key()))
    kube.create(bulk_termination(namespace, "restart", *targets))
    wait_for_first_bulk_patch(sim)
    kube.wait_for(
        BT,
        "restart",
        lambda o: o.get("status", {}).get("active", 0) > 0,
        namespace=namespace,
        timeout=10,
    )
    operator.kill()
    operator.start()
    obj = kube.wait_for(BT, "restart", has_condition("Complete"), namespace=namespace, timeout=60)
    assert obj["status"]["succeeded"] == 40
    assert sim.violations == []
    # One bulk STOP before the kill, one bulk DELETE after it: nothing accepted was re-sent.
    assert sim.counters["PATCH /lm/deployments"] == 2


def _delete_mid_run(kube: Kube, namespace: str, sim: SimulatorThread) -> None:
    """A run whose one target takes 30 s to stop, deleted once its bulk PATCH went out; returns
    when the resource is gone (its finalizer taken off within 30 s)."""
    sim.set_timings(timings(stopping=30.0, deletion=1.0))
    seed(sim, (D, "dep-slow", Status.RUNNING))
    kube.create(secret(namespace, sim.service_key()))
    kube.create(bulk_termination(namespace, "doomed", ("Deployment", "dep-slow", "DELETED")))
    wait_for_first_bulk_patch(sim)
    kube.delete(BT, "doomed", namespace=namespace)
    kube.wait_gone(BT, "doomed", namespace=namespace, timeout=30)


def test_deleting_the_resource_mid_run_stops_its_work(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    _delete_mid_run(kube, namespace, sim)
    calls = sum(sim.counters.values())
    time.sleep(2.0)
    assert sum(sim.counters.values()) == calls  # no polling after the resource is gone


def test_deleting_the_resource_mid_run_logs_one_line_and_no_error(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    _delete_mid_run(kube, namespace, sim)
    time.sleep(2.0)  # whatever the daemon logs after the resource is gone
    log = operator.log()
    stopped = [line for line in log.splitlines() if "run stopped" in line]
    assert len(stopped) == 1, log
    assert f"{namespace}/doomed: run stopped: the BulkTermination was deleted" in stopped[0]
    assert "Traceback" not in log, log
    assert "final status not written" not in log, log


def test_ttl_deletes_the_resource_after_it_finished(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    make_operator(values={"ttl": {"enabled": True}}).start()
    seed(sim, (D, "dep-stp1", Status.STOPPED))
    kube.create(secret(namespace, sim.service_key()))
    kube.create(
        bulk_termination(
            namespace, "ephemeral", ("Deployment", "dep-stp1", "STOPPED"), ttlSecondsAfterFinished=5
        )
    )
    kube.wait_for(BT, "ephemeral", has_condition("Complete"), namespace=namespace, timeout=30)
    kube.wait_gone(BT, "ephemeral", namespace=namespace, timeout=30)


def test_ttl_without_delete_rights_is_an_event_not_a_retry_loop(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    seed(sim, (D, "dep-stp1", Status.STOPPED))
    kube.create(secret(namespace, sim.service_key()))
    kube.create(
        bulk_termination(
            namespace, "kept", ("Deployment", "dep-stp1", "STOPPED"), ttlSecondsAfterFinished=0
        )
    )
    kube.wait_for(
        BT,
        "kept",
        lambda _: "TTLDeleteForbidden" in reasons(kube, namespace, "kept"),
        namespace=namespace,
        timeout=30,
    )
    assert kube.get(BT, "kept", namespace=namespace)["metadata"]["name"] == "kept"


def test_three_resources_at_once(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    kube.create(secret(namespace, sim.service_key()))
    for n in range(3):
        ids = [f"dep-{n}-{i:03d}" for i in range(20)]
        seed(sim, *[(D, i, Status.RUNNING) for i in ids])
        kube.create(
            bulk_termination(namespace, f"run-{n}", *[("Deployment", i, "DELETED") for i in ids])
        )
    for n in range(3):
        obj = kube.wait_for(
            BT, f"run-{n}", has_condition("Complete"), namespace=namespace, timeout=60
        )
        assert obj["status"]["progress"] == "20/20"
    assert sim.violations == []


def test_status_writes_are_throttled(
    kube: Kube, namespace: str, sim: SimulatorThread, operator: OperatorProcess
) -> None:
    sim.set_timings(timings(stopping=2.0, deletion=1.0))
    ids = [f"dep-{i:03d}" for i in range(30)]
    seed(sim, *[(D, i, Status.RUNNING) for i in ids])
    kube.create(secret(namespace, sim.service_key()))
    mark = kube.plane.audit_mark()
    started = time.monotonic()
    kube.create(
        bulk_termination(namespace, "throttled", *[("Deployment", i, "DELETED") for i in ids])
    )
    kube.wait_for(BT, "throttled", has_condition("Complete"), namespace=namespace, timeout=60)
    elapsed = time.monotonic() - started
    writes = len(status_writes(kube, mark, "throttled"))
    # --status-interval 0.5: at most one write per 0.5 s, plus phase changes, one before each
    # round of sends (crash safety) and the final one.
    send_rounds = sim.counters["PATCH /lm/deployments"]
    assert 2 <= writes <= elapsed / 0.5 + 4 + send_rounds, writes


def test_metrics_are_served_and_count_the_run(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    port = free_port()
    make_operator("--metrics-port", str(port), "--metrics-secure=false").start()
    seed(sim, (D, "dep-run1", Status.RUNNING))
    kube.create(secret(namespace, sim.service_key()))
    kube.create(bulk_termination(namespace, "measured", ("Deployment", "dep-run1", "STOPPED")))
    kube.wait_for(BT, "measured", has_condition("Complete"), namespace=namespace, timeout=60)
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    labels = f'bulktermination_namespace="{namespace}",outcome="succeeded"'
    assert f"bulkterm_targets_total{{{labels}}} 1.0" in text
    assert 'bulkterm_aiapi_calls_total{endpoint="bulk_patch_deployments",outcome="ok"} 1.0' in text
    assert "bulkterm_token_refreshes_total 1.0" in text
    active = f'bulkterm_active_bulkterminations{{bulktermination_namespace="{namespace}"}} 0.0'
    assert active in text
    assert "bulkterm_reconcile_rounds_total" in text
