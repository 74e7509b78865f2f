"""Two operators without peering (a misconfiguration: ``replicaCount: 2`` with peering off, two
releases in one namespace watching the same one) never both send: each run holds a Lease of its
own, in the operator's namespace (the release's), named for the CR's namespace and name.

The operators run as the chart's ServiceAccount against the real API server, with no
``--peering``; the simulator counts every write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.leases import lease_name
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
from tests.plugins.helm import Release
from tests.plugins.kube import namespace_for

BT = "bulkterminations"
D = Kind.DEPLOYMENT


@pytest.fixture
def pair(
    kube: Kube, namespace: str, tmp_path: Path, make_operator: Callable[..., OperatorProcess]
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    """Two operators of the same release watching one namespace, neither with peering."""
    first = make_operator()
    (tmp_path / "second").mkdir()
    second = OperatorProcess(
        kube,
        namespace,
        tmp_path / "second",
        kubeconfig=first.kubeconfig,
        lease_namespace=first.lease_namespace,
    )
    yield first, second
    second.stop()


def _lease_holder(kube: Kube, op: OperatorProcess, name: str) -> str | None:
    lease = kube.get("leases", lease_name(op.namespace, name), namespace=op.lease_namespace)
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
    holder = _lease_holder(kube, first, "handover")
    assert holder is not None
    second.start()
    time.sleep(2.0)
    first.kill()
    killed_at = time.monotonic()
    deadline = killed_at + 30
    while time.monotonic() < deadline:
        now_holder = _lease_holder(kube, second, "handover")
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


def _new_namespace(kube: Kube, name: str) -> Iterator[str]:
    kube.create_namespace(name)
    yield name
    kube.purge(BT, name)
    kube.delete("namespaces", name, namespace="")


@pytest.fixture
def release_namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """The operator's own namespace, apart from those it watches (as in a cluster)."""
    yield from _new_namespace(kube, namespace_for(f"operators-{request.node.name}"))


@pytest.fixture
def other_namespace(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _new_namespace(kube, namespace_for(f"other-{request.node.name}"))


def _leases(kube: Kube, namespace: str) -> dict[str, dict[str, Any]]:
    return {lease["metadata"]["name"]: lease for lease in kube.list("leases", namespace=namespace)}


def test_two_crs_of_one_name_in_two_namespaces_run_at_once_under_two_leases(
    kube: Kube,
    namespace: str,
    other_namespace: str,
    release_namespace: str,
    sim: SimulatorThread,
    install_chart: Callable[..., Release],
    tmp_path: Path,
) -> None:
    """The Leases live in the release's namespace (its Role the operator's only Lease grant),
    one per CR: ``same`` in one namespace does not wait for ``same`` in the other."""
    watched = (namespace, other_namespace)
    release = install_chart(release_namespace, {"watchNamespaces": list(watched)})
    op = OperatorProcess(
        kube,
        namespace,
        tmp_path,
        "--namespace",
        other_namespace,
        kubeconfig=release.kubeconfig(),
        lease_namespace=release_namespace,
    )
    sim.set_timings(timings(stopping=4.0, deletion=1.0))
    op.start()
    try:
        for n, ns in enumerate(watched):
            ids = [f"dep-{n}{i:02d}" for i in range(5)]
            for i in ids:
                sim.add_item(D, i, Status.RUNNING)
            kube.create(secret(ns, sim.service_key()))
            kube.create(bulk_termination(ns, "same", *[("Deployment", i, "STOPPED") for i in ids]))
        expected = {lease_name(ns, "same") for ns in watched}
        deadline = time.monotonic() + 30
        while set(_leases(kube, release_namespace)) != expected:
            assert time.monotonic() < deadline, (_leases(kube, release_namespace), op.log()[-3000:])
            time.sleep(0.1)
        held = _leases(kube, release_namespace)
        assert {lease["spec"]["holderIdentity"] for lease in held.values()} != {None}
        assert all(_leases(kube, ns) == {} for ns in watched)  # none beside the CRs
        for ns in watched:
            obj = kube.wait_for(BT, "same", has_condition("Complete"), namespace=ns, timeout=60)
            assert obj["status"]["succeeded"] == 5
        assert "waiting until it finishes" not in op.log()
        assert "Traceback" not in op.log()
        assert f"Leases are kept in namespace {release_namespace}" in op.log()
    finally:
        op.stop()
    assert sim.violations == []
    assert _leases(kube, release_namespace) == {}  # each released as its run ended
