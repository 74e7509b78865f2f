"""A Lease a crash left behind is not kept for ever: the operator, running as the chart's
ServiceAccount (its leases Role the only Lease grant), deletes at start-up an expired run Lease
of its namespace whose BulkTermination is gone. The rule itself: ``tests/k8s/test_leases.py``
and ``tests/e2e/test_lease_store.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import config as k8s_config

from bulkterm.k8s.lease_store import KubeLeaseStore, LeaseRecord, Owner
from bulkterm.k8s.leases import lease_name
from tests.e2e.conftest import OperatorProcess
from tests.kube import Kube

pytestmark = pytest.mark.e2e


async def test_a_lease_whose_bulktermination_is_gone_is_deleted_when_the_operator_starts(
    kube: Kube, namespace: str, make_operator: Callable[..., OperatorProcess]
) -> None:
    op = make_operator()
    gone = Owner(namespace=namespace, name="gone", uid="00000000-0000-0000-0000-000000000000")
    name = lease_name(gone.namespace, gone.name)
    renewed = datetime.now(UTC) - timedelta(minutes=5)  # its holder was SIGKILLed long ago
    record = LeaseRecord(holder="dead", renew_time=renewed, acquire_time=renewed, duration=10.0)
    api_client = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    try:
        await KubeLeaseStore(api_client).create(op.lease_namespace, name, record, gone)
    finally:
        api_client.close()
    op.start()
    deadline = time.monotonic() + 20
    while kube.get_or_none("leases", name, namespace=op.lease_namespace) is not None:
        assert time.monotonic() < deadline, op.log()[-3000:]
        await asyncio.sleep(0.2)
    log = op.log()
    assert (
        f"Leases are kept in namespace {op.lease_namespace} (from BULKTERM_LEASE_NAMESPACE)" in log
    )
    assert f"deleted lease {op.lease_namespace}/{name}" in log
    assert "Traceback" not in log and "Forbidden" not in log
