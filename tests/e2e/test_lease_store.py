"""The Lease store against the real API server, and the in-memory store of ``test_leases.py``
held to the same contract: what the unit tests take for granted is what kube-apiserver does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from bulkterm.k8s.lease_store import KubeLeaseStore, LeaseConflict, LeaseRecord, LeaseStore, Owner
from tests.crd.samples import valid_cr
from tests.k8s.test_leases import MemoryLeases
from tests.kube import Kube

NAME = "bulktermination.contract"


@pytest.fixture(params=["kube-apiserver", "memory"])
async def store(
    request: pytest.FixtureRequest, kube: Kube, namespace: str
) -> AsyncIterator[tuple[LeaseStore, Owner]]:
    body = valid_cr()
    body["metadata"] = {"name": "contract", "namespace": namespace}
    created = kube.create(body)
    owner = Owner(name="contract", uid=created["metadata"]["uid"])
    if request.param == "memory":
        yield MemoryLeases(), owner
        return
    api_client = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    try:
        yield KubeLeaseStore(api_client), owner
    finally:
        api_client.close()


def _record(holder: str, version: str | None = None) -> LeaseRecord:
    # A renewal always carries a new renewTime (a PUT that changes nothing keeps the
    # resourceVersion on the real server), hence microseconds from the clock.
    now = datetime.now(UTC)
    return LeaseRecord(
        holder=holder,
        renew_time=now,
        acquire_time=now,
        duration=10.0,
        resource_version=version,
        cr_uid="uid-of-the-cr",
        transitions=1,
    )


async def test_a_lease_reads_back_as_written(
    store: tuple[LeaseStore, Owner], namespace: str
) -> None:
    leases, owner = store
    written = _record("a")
    version = await leases.create(namespace, NAME, written, owner)
    read = await leases.read(namespace, NAME)
    assert read is not None
    assert (read.holder, read.duration, read.transitions, read.cr_uid) == (
        "a",
        10.0,
        1,
        "uid-of-the-cr",
    )
    assert read.renew_time == written.renew_time  # MicroTime keeps the microseconds
    assert read.resource_version == version


async def test_a_missing_lease_reads_as_none(
    store: tuple[LeaseStore, Owner], namespace: str
) -> None:
    assert await store[0].read(namespace, NAME) is None


async def test_creating_an_existing_lease_is_a_conflict(
    store: tuple[LeaseStore, Owner], namespace: str
) -> None:
    leases, owner = store
    await leases.create(namespace, NAME, _record("a"), owner)
    with pytest.raises(LeaseConflict):
        await leases.create(namespace, NAME, _record("b"), owner)


async def test_replacing_from_a_stale_version_is_a_conflict(
    store: tuple[LeaseStore, Owner], namespace: str
) -> None:
    leases, owner = store
    first = await leases.create(namespace, NAME, _record("a"), owner)
    second = await leases.replace(namespace, NAME, _record("a", first), owner)
    assert second != first
    with pytest.raises(LeaseConflict):
        await leases.replace(namespace, NAME, _record("b", first), owner)
    read = await leases.read(namespace, NAME)
    assert read is not None and read.holder == "a"


async def test_deleting_from_a_stale_version_is_a_conflict_and_keeps_the_lease(
    store: tuple[LeaseStore, Owner], namespace: str
) -> None:
    leases, owner = store
    first = await leases.create(namespace, NAME, _record("a"), owner)
    await leases.replace(namespace, NAME, _record("b", first), owner)
    with pytest.raises(LeaseConflict):
        await leases.delete(namespace, NAME, first)
    assert await leases.read(namespace, NAME) is not None


async def test_deleting_the_current_version_removes_it(
    store: tuple[LeaseStore, Owner], namespace: str
) -> None:
    leases, owner = store
    version = await leases.create(namespace, NAME, _record("a"), owner)
    await leases.delete(namespace, NAME, version)
    assert await leases.read(namespace, NAME) is None
    await leases.delete(namespace, NAME, version)  # already gone: nothing to do


async def test_the_lease_is_owned_by_its_bulktermination(kube: Kube, namespace: str) -> None:
    body = valid_cr()
    body["metadata"] = {"name": "owned", "namespace": namespace}
    uid = kube.create(body)["metadata"]["uid"]
    api_client = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    try:
        await KubeLeaseStore(api_client).create(
            namespace, NAME, _record("a"), Owner(name="owned", uid=uid)
        )
        lease = k8s.CoordinationV1Api(api_client).read_namespaced_lease(NAME, namespace)
    finally:
        api_client.close()
    (ref,) = lease.metadata.owner_references
    assert (ref.kind, ref.name, ref.uid) == ("BulkTermination", "owned", uid)
