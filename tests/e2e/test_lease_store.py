"""The Lease store against the real API server, and the in-memory store of ``test_leases.py``
held to the same contract: what the unit tests take for granted is what kube-apiserver does.

The Lease lives in the test's namespace standing for the operator's; its BulkTermination is in
another one (``crs``), as in a cluster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from bulkterm.k8s.lease_store import (
    NAME_LABEL,
    NAMESPACE_LABEL,
    UID_LABEL,
    KubeLeaseStore,
    LeaseConflict,
    LeaseRecord,
    LeaseStore,
    Owner,
    label_value,
)
from bulkterm.k8s.leases import lease_name, sweep_leases
from tests.crd.samples import valid_cr
from tests.k8s.test_leases import MemoryLeases
from tests.kube import Kube
from tests.plugins.kube import namespace_for

NAME = "bulktermination.contract"
BT = "bulkterminations"


@pytest.fixture
def crs(kube: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """The namespace of the BulkTerminations, not the one of their Leases."""
    name = namespace_for(f"crs-{request.node.name}")
    kube.create_namespace(name)
    yield name
    kube.purge(BT, name)
    kube.delete("namespaces", name, namespace="")


def _cr(kube: Kube, namespace: str, name: str) -> Owner:
    body = valid_cr()
    body["metadata"] = {"name": name, "namespace": namespace}
    created = kube.create(body)
    return Owner(namespace=namespace, name=name, uid=created["metadata"]["uid"])


@pytest.fixture(params=["kube-apiserver", "memory"])
async def store(
    request: pytest.FixtureRequest, kube: Kube, crs: str
) -> AsyncIterator[tuple[LeaseStore, Owner]]:
    owner = _cr(kube, crs, "contract")
    if request.param == "memory":
        memory = MemoryLeases()
        memory.crs[(owner.namespace, owner.name)] = owner.uid
        yield memory, owner
        return
    api_client = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    try:
        yield KubeLeaseStore(api_client), owner
    finally:
        api_client.close()


def _record(holder: str, version: str | None = None, *, age: float = 0.0) -> LeaseRecord:
    # A renewal always carries a new renewTime (a PUT that changes nothing keeps the
    # resourceVersion on the real server), hence microseconds from the clock.
    now = datetime.now(UTC) - timedelta(seconds=age)
    return LeaseRecord(
        holder=holder,
        renew_time=now,
        acquire_time=now,
        duration=10.0,
        resource_version=version,
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
        owner.uid,
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


async def test_the_runs_leases_are_listed_with_the_bulktermination_each_names(
    store: tuple[LeaseStore, Owner], namespace: str
) -> None:
    leases, owner = store
    version = await leases.create(namespace, NAME, _record("a"), owner)
    (listed,) = await leases.list(namespace)
    assert (listed.name, listed.owner, listed.record.resource_version) == (NAME, owner, version)
    assert await leases.list(owner.namespace) == []


async def test_the_uid_of_a_bulktermination_is_read_by_its_name(
    store: tuple[LeaseStore, Owner],
) -> None:
    leases, owner = store
    assert await leases.bulktermination_uid(owner.namespace, owner.name) == owner.uid
    assert await leases.bulktermination_uid(owner.namespace, "no-such-one") is None


async def test_a_lease_is_not_owned_and_names_its_bulktermination_in_labels_and_annotations(
    kube: Kube, namespace: str, crs: str
) -> None:
    """An ownerReference cannot point to another namespace: the Lease names its CR instead."""
    long_name = "n" * 70
    owner = _cr(kube, crs, long_name)
    name = lease_name(crs, long_name)
    api_client = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    try:
        await KubeLeaseStore(api_client).create(namespace, name, _record("a"), owner)
        lease = k8s.CoordinationV1Api(api_client).read_namespaced_lease(name, namespace)
    finally:
        api_client.close()
    assert name == f"bulktermination.{crs}.{long_name}"
    assert lease.metadata.owner_references is None
    labels = lease.metadata.labels
    assert (labels[NAMESPACE_LABEL], labels[NAME_LABEL], labels[UID_LABEL]) == (
        crs,
        label_value(long_name),
        owner.uid,
    )
    assert len(labels[NAME_LABEL]) <= 63 and labels[NAME_LABEL] != long_name
    assert Owner.named_in(lease.metadata.annotations) == owner


async def test_the_sweep_deletes_only_the_expired_leases_of_bulkterminations_that_are_gone(
    kube: Kube, namespace: str, crs: str
) -> None:
    """On the real API server: a CR deleted while its operator was down (SIGKILL) leaves its
    Lease behind; the sweep deletes it, and keeps a live one and one whose CR is still there."""
    gone, kept, live = (_cr(kube, crs, n) for n in ("gone", "kept", "live"))
    kube.delete(BT, "gone", namespace=crs)
    kube.delete(BT, "live", namespace=crs)
    kube.wait_gone(BT, "gone", namespace=crs)
    api_client = k8s_config.new_client_from_config(config_file=str(kube.kubeconfig_path))
    try:
        leases = KubeLeaseStore(api_client)
        for owner, age in ((gone, 60.0), (kept, 60.0), (live, 0.0)):
            name = lease_name(owner.namespace, owner.name)
            await leases.create(namespace, name, _record("dead", age=age), owner)
        # Another Lease of the namespace (a leader election, say) is none of the sweep's.
        k8s.CoordinationV1Api(api_client).create_namespaced_lease(
            namespace,
            {"metadata": {"name": "somebody-elses"}, "spec": {"holderIdentity": "x"}},
        )
        assert await sweep_leases(leases, namespace) == [lease_name(crs, "gone")]
        remaining = k8s.CoordinationV1Api(api_client).list_namespaced_lease(namespace)
    finally:
        api_client.close()
    assert sorted(lease.metadata.name for lease in remaining.items) == [
        lease_name(crs, "kept"),
        lease_name(crs, "live"),
        "somebody-elses",
    ]
