"""Two operators without peering (a misconfiguration: ``replicaCount: 2`` with peering off, two
releases watching one namespace) never both send: each run holds a Lease of its own.

Both operators run as the chart's ServiceAccount against the real API server, with no
``--peering``; the simulator counts every write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
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
)
from tests.kube import Kube

BT = "bulkterminations"
D = Kind.DEPLOYMENT


@pytest.fixture
def pair(
    kube: Kube, namespace: str, tmp_path: Path, make_operator: Callable[..., OperatorProcess]
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """Two operators of the same release watching one namespace, neither with peering."""
    first = make_operator()
    (tmp_path / "second").mkdir()
    second = OperatorProcess(kube, namespace, tmp_path / "second", kubeconfig=first.kubeconfig)
    yield first, second
    second.stop()


def _lease_holder(kube: Kube, namespace: str, name: str) -> str | None:
    lease = kube.get("leases", f"bulktermination.{name}", namespace=namespace)
    holder: str | None = lease["spec"].get("holderIdentity")
    return holder


def test_two_operators_without_peering_send_each_target_once(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    pair: tuple[OperatorProcess, OperatorProcess],
) -> None:
    first, second = pair[0].start(), pair[1].start()
    sim.set_timings(timings(stopping=2.0, deletion=1.0))
    ids = [f"dep-{i:03d}" for i in range(20)]
    for i in ids:
        sim.add_item(D, i, Status.RUNNING)
    kube.create(secret(namespace, sim.service_key()))
    kube.create(bulk_termination(namespace, "twice", *[("Deployment", i, "DELETED") for i in ids]))
    obj = kube.wait_for(BT, "twice", has_condition("Complete"), namespace=namespace, timeout=60)
    assert obj["status"]["succeeded"] == 20
    # One bulk STOP and one bulk DELETE for the 20: had both operators run it, each would
    # have sent its own.
    assert sim.counters["PATCH /lm/deployments"] == 2
    assert sim.violations == []
    waiting = [op for op in (first, second) if "is running it; waiting" in op.log()]
    assert len(waiting) == 1, (first.log()[-2000:], second.log()[-2000:])
    for op in (first, second):
        assert "Traceback" not in op.log()


def test_the_other_operator_takes_over_when_the_holder_is_killed(
    kube: Kube,
    namespace: str,
    sim: SimulatorThread,
    pair: tuple[OperatorProcess, OperatorProcess],
) -> None:
    first, second = pair
    first.start()
    start_deployment_run(kube, namespace, sim, "handover", 10, stopping=20.0)
    holder = _lease_holder(kube, namespace, "handover")
    assert holder is not None
    second.start()
    time.sleep(2.0)
    first.kill()
    killed_at = time.monotonic()
    deadline = killed_at + 30
    while time.monotonic() < deadline:
        now_holder = _lease_holder(kube, namespace, "handover")
        if now_holder not in (None, holder):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(second.log()[-3000:])
    took = time.monotonic() - killed_at
    assert took < 15.0, took  # the lease lasts 10 s after the last renewal
    sim.set_timings(timings(stopping=0.5, deletion=0.5))
    obj = kube.wait_for(BT, "handover", has_condition("Complete"), namespace=namespace, timeout=60)
    assert obj["status"]["succeeded"] == 10
    assert sim.counters["PATCH /lm/deployments"] == 1  # the one bulk STOP: nothing re-sent
    assert "took over from" in second.log()
