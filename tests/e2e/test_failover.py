"""Two replicas with kopf peering (the chart with ``replicaCount: 2``): when the active one is
SIGKILLed mid-run, the standby takes the run over within 15 s and re-sends nothing.

The time is measured on the API server: from the kill to the first status write of the
BulkTermination logged in the audit log after it (the killed replica can write no more).
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import SimulatorThread
from tests.e2e.conftest import (
    OperatorProcess,
    bulk_termination,
    has_condition,
    secret,
    start_deployment_run,
    timings,
    wait_for_first_bulk_patch,
)
from tests.kube import Kube

pytestmark = pytest.mark.e2e
BT = "bulkterminations"
D = Kind.DEPLOYMENT
PEERING = "bt-peering"
FAILOVER_LIMIT = 15.0


def wait_for_peers(kube: Kube, namespace: str, peers: set[str], timeout: float) -> None:
    """Until the KopfPeering object holds a keep-alive record of each of ``peers`` (a standby
    starts paused and only logs a pause it enters later)."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        got = kube.kubectl("get", "kopfpeering", PEERING, "-n", namespace, "-o", "json")
        if got.returncode == 0:
            seen = set(json.loads(got.stdout).get("status") or {})
            if peers <= seen:
                return
        time.sleep(0.2)
    raise TimeoutError(f"peers in {PEERING}: {seen}, expected {peers}")


def status_write_times(kube: Kube, mark: int, name: str) -> list[float]:
    """Epoch seconds at which the API server received each PATCH of ``name``'s status."""
    times = []
    for event in kube.plane.audit_events(mark):
        ref = event.get("objectRef") or {}
        if (
            event.get("verb") == "patch"
            and isinstance(ref, dict)
            and ref.get("name") == name
            and ref.get("subresource") == "status"
        ):
            stamp = str(event["requestReceivedTimestamp"]).replace("Z", "+00:00")
            times.append(datetime.fromisoformat(stamp).timestamp())
    return sorted(times)


def since(log: str, epoch: float) -> list[str]:
    """The lines of ``log`` stamped after ``epoch``, each as ``+seconds line``: the timeline of
    a failover, to quote."""
    lines = []
    for line in log.splitlines():
        stamp, _, text = line.partition(" ")
        try:
            at = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        if at > epoch and "GET /healthz" not in text:
            lines.append(f"  +{at - epoch:5.1f} s {text[:160]}")
    return lines


def test_standby_takes_over_within_15_s_of_a_sigkill(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    sim = sim
    active = make_operator(values={"replicaCount": 2, "peering": {"name": PEERING}})
    # The flags and environment of the chart's Deployment (replicaCount 2), as a pod gets them.
    (deployment,) = kube.list("deployments", namespace=namespace)
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    chart_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert chart_env["BULKTERM_PEERING_LIFETIME"] == "6"
    assert f"--peering={PEERING}" in container["args"]
    assert pod["terminationGracePeriodSeconds"] == 45
    peering = (f"--peering={PEERING}",)
    active.extra = (*peering, "--peering-priority", "200")
    active.env = {**chart_env, "POD_ID": "replica-a"}
    active.start()
    (tmp_path / "standby").mkdir()
    standby = OperatorProcess(
        kube,
        namespace,
        tmp_path / "standby",
        *peering,
        "--peering-priority",
        "100",
        kubeconfig=active.kubeconfig,
        env={**chart_env, "POD_ID": "replica-b"},
        lease_namespace=active.lease_namespace,
    )
    try:
        standby.start()
        wait_for_peers(kube, namespace, {"replica-a", "replica-b"}, 30)

        start_deployment_run(kube, namespace, sim, "failover", 20, stopping=25.0)
        kube.wait_for(
            BT,
            "failover",
            lambda o: o.get("status", {}).get("active", 0) > 0,
            namespace=namespace,
            timeout=10,
        )
        time.sleep(1.0)
        mark = kube.plane.audit_mark()
        active.kill()
        killed_at = time.time()

        deadline = time.monotonic() + 40
        after: list[float] = []
        while not after and time.monotonic() < deadline:
            after = [t for t in status_write_times(kube, mark, "failover") if t > killed_at]
            time.sleep(0.1)
        assert after, standby.log()[-3000:]
        failover = after[0] - killed_at
        print(f"failover: the standby wrote the status {failover:.1f} s after the SIGKILL")
        print("\n".join(since(standby.log(), killed_at)))
        assert failover < FAILOVER_LIMIT, standby.log()[-3000:]

        obj = kube.wait_for(
            BT, "failover", has_condition("Complete"), namespace=namespace, timeout=60
        )
        assert obj["status"]["succeeded"] == 20
        assert sim.counters["PATCH /lm/deployments"] == 1  # the one bulk STOP: nothing re-sent
        assert sim.violations == []
        assert "Traceback" not in standby.log()
    finally:
        standby.stop()


def test_sigterm_records_what_is_in_flight_and_the_next_replica_resumes(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    make_operator: Callable[..., OperatorProcess],
) -> None:
    """A rolling update or an eviction: SIGTERM mid-run. The operator stops within the pod's
    grace period (the chart's terminationGracePeriodSeconds, 45 s) with the in-flight work in
    the status; the next replica resumes from it and sends nothing twice."""
    sim = sim
    old = make_operator().start()
    sim.set_timings(timings(stopping=6.0, deletion=1.0))
    ids = [f"dep-{i:03d}" for i in range(20)]
    for i in ids:
        sim.add_item(D, i, Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(
        bulk_termination(namespace, "rolling", *[("Deployment", i, "STOPPED") for i in ids])
    )
    wait_for_first_bulk_patch(sim)
    kube.wait_for(
        BT,
        "rolling",
        lambda o: o.get("status", {}).get("active", 0) > 0,
        namespace=namespace,
        timeout=10,
    )
    assert old.proc is not None
    signalled = time.monotonic()
    old.proc.send_signal(signal.SIGTERM)
    code = old.proc.wait(45)
    stopped_in = time.monotonic() - signalled
    print(f"SIGTERM: the operator exited ({code}) {stopped_in:.1f} s after the signal")
    assert stopped_in < 30.0, old.log()[-3000:]
    recorded = kube.get(BT, "rolling", namespace=namespace)["status"]
    assert recorded["active"] == 20 and recorded["succeeded"] < 20, recorded
    assert "Traceback" not in old.log(), old.log()[-5000:]

    new = OperatorProcess(
        kube, namespace, old.log_dir, kubeconfig=old.kubeconfig, lease_namespace=old.lease_namespace
    )
    new.starts = old.starts  # its own log file
    try:
        new.start()
        obj = kube.wait_for(
            BT, "rolling", has_condition("Complete"), namespace=namespace, timeout=60
        )
    finally:
        new.stop()
    assert obj["status"]["succeeded"] == 20
    assert sim.counters["PATCH /lm/deployments"] == 1  # the one bulk STOP: nothing re-sent
    assert sim.violations == []
