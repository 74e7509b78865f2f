"""``bulkterm_active_replica`` on two replicas with kopf peering: 1 on the one kopf lets run,
0 on the standby, and the standby's turns 1 when it takes over."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import OperatorProcess
from tests.e2e.test_failover import PEERING, wait_for_peers
from tests.kube import Kube, free_port

pytestmark = pytest.mark.e2e


def active_replica(port: int) -> float | None:
    try:
        page = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == "bulkterm_active_replica":
                return sample.value
    return None


def until(port: int, value: float, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    seen = active_replica(port)
    while seen != value and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = active_replica(port)
    return seen


def test_only_the_active_replica_says_it_is_and_the_standby_takes_over(
    kube: Kube,
    namespace: str,
    make_operator: Callable[..., OperatorProcess],
    tmp_path: Path,
) -> None:
    ports = free_port(), free_port()
    metrics = [("--metrics-secure=false", "--metrics-port", str(port)) for port in ports]
    peering = (f"--peering={PEERING}",)
    env = {"BULKTERM_PEERING_LIFETIME": "5"}
    active = make_operator(
        *peering, "--peering-priority", "200", *metrics[0],
        env={**env, "POD_ID": "replica-a"},
        values={"replicaCount": 2, "peering": {"name": PEERING}},
    )  # fmt: skip
    active.start()
    (tmp_path / "standby").mkdir()
    standby = OperatorProcess(
        kube, namespace, tmp_path / "standby", *peering, "--peering-priority", "100", *metrics[1],
        kubeconfig=active.kubeconfig, env={**env, "POD_ID": "replica-b"},
        lease_namespace=active.lease_namespace,
    )  # fmt: skip
    try:
        standby.start()
        wait_for_peers(kube, namespace, {"replica-a", "replica-b"}, 30)
        assert until(ports[0], 1.0, 15) == 1.0, active.log()[-2000:]
        assert until(ports[1], 0.0, 15) == 0.0, standby.log()[-2000:]
        time.sleep(2)  # a standby stays one
        assert active_replica(ports[1]) == 0.0
        active.kill()
        assert until(ports[1], 1.0, 30) == 1.0, standby.log()[-2000:]
    finally:
        standby.stop()
