"""One sender per BulkTermination: the run's Lease, against an in-memory Lease store.

The store behaves as the API server does for Leases (create refuses an existing name, replace
and delete refuse a stale resourceVersion); ``away`` makes every call fail as during an outage.
``tests/e2e/test_lease_store.py`` holds it to the real API server's behaviour. Timings are
shrunk to tenths of a second; the real operators' side is in ``tests/e2e/test_exclusive.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import Phase, Progress, Situation
from bulkterm.engine.progress import build_conditions
from bulkterm.k8s.leases import (
    ExclusiveApi,
    LeaseConflict,
    LeaseForbidden,
    LeaseLost,
    LeaseRecord,
    LeaseTiming,
    Owner,
    RunLease,
    lease_name,
)
from tests.k8s.support import REF, FakeEvents, FakeKube, condition, reconciler, run_for, spec

FAST = LeaseTiming(duration=0.6, renew_every=0.1, margin=0.2, retry_every=0.05)
OWNER = Owner(name="cleanup", uid="uid-1")


class MemoryLeases:
    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], LeaseRecord] = {}
        self.owners: dict[tuple[str, str], Owner] = {}
        self.version = 0
        self.away = False

    def _check(self) -> None:
        if self.away:
            raise ConnectionRefusedError("the API server is away")

    def _bump(self, key: tuple[str, str], record: LeaseRecord, owner: Owner) -> str:
        self.version += 1
        stored = dataclasses.replace(record, resource_version=str(self.version))
        self.leases[key] = stored
        self.owners[key] = owner
        return str(self.version)

    async def read(self, namespace: str, name: str) -> LeaseRecord | None:
        self._check()
        found = self.leases.get((namespace, name))
        return dataclasses.replace(found) if found else None

    async def create(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str:
        self._check()
        if (namespace, name) in self.leases:
            raise LeaseConflict("exists")
        return self._bump((namespace, name), record, owner)

    async def replace(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str:
        self._check()
        current = self.leases.get((namespace, name))
        if current is None or current.resource_version != record.resource_version:
            raise LeaseConflict("changed")
        return self._bump((namespace, name), record, owner)

    async def delete(self, namespace: str, name: str, resource_version: str) -> None:
        self._check()
        current = self.leases.get((namespace, name))
        if current is None:
            return
        if current.resource_version != resource_version:
            raise LeaseConflict("changed")  # the API server's failed precondition (409)
        del self.leases[(namespace, name)]

    def holder(self) -> str | None:
        record = self.leases.get(("ns", lease_name(OWNER.name)))
        return record.holder if record else None


def _lease(store: MemoryLeases, holder: str, owner: Owner = OWNER) -> RunLease:
    return RunLease(store, "ns", owner, holder=holder, timing=FAST)


async def _acquired(lease: RunLease, within: float = 3.0) -> bool:
    return await asyncio.wait_for(lease.acquire(asyncio.Event()), within)


async def test_the_first_run_creates_the_lease_owned_by_its_cr() -> None:
    store = MemoryLeases()
    assert await _acquired(_lease(store, "a"))
    assert store.holder() == "a"
    assert store.owners[("ns", "bulktermination.cleanup")] == OWNER


async def test_a_second_operator_waits_while_the_holder_renews() -> None:
    store = MemoryLeases()
    first, second = _lease(store, "a"), _lease(store, "b")
    assert await _acquired(first)
    keeper = asyncio.create_task(first.keep())
    stop = asyncio.Event()
    waiting = asyncio.create_task(second.acquire(stop))
    await asyncio.sleep(3 * FAST.duration)
    assert not waiting.done() and store.holder() == "a"
    stop.set()
    assert await waiting is False
    keeper.cancel()


async def test_a_released_lease_is_taken_over_at_once() -> None:
    store = MemoryLeases()
    first, second = _lease(store, "a"), _lease(store, "b")
    assert await _acquired(first)
    await first.release()
    assert await _acquired(second, within=FAST.duration / 2)
    assert store.holder() == "b"


async def test_a_holder_that_stopped_renewing_is_taken_over_after_the_duration() -> None:
    store = MemoryLeases()
    assert await _acquired(_lease(store, "a"))  # then killed: never renews, never releases
    started = asyncio.get_running_loop().time()
    assert await _acquired(_lease(store, "b"))
    waited = asyncio.get_running_loop().time() - started
    assert FAST.duration * 0.8 <= waited <= FAST.duration + 1.0
    assert store.leases[("ns", "bulktermination.cleanup")].transitions == 1


async def test_a_lease_left_by_a_deleted_cr_of_the_same_name_is_taken_at_once() -> None:
    store = MemoryLeases()
    old = _lease(store, "a", Owner(name="cleanup", uid="uid-old"))
    assert await _acquired(old)
    assert await _acquired(_lease(store, "b"), within=FAST.duration / 2)


async def test_the_same_holder_reacquires_its_own_lease_after_a_restart_of_the_run() -> None:
    store = MemoryLeases()
    assert await _acquired(_lease(store, "a"))
    assert await _acquired(_lease(store, "a"), within=FAST.duration / 2)


async def test_writes_pause_when_renewals_fail_and_resume_when_one_lands() -> None:
    store = MemoryLeases()
    lease = _lease(store, "a")
    assert await _acquired(lease)
    keeper = asyncio.create_task(lease.keep())
    store.away = True
    await asyncio.sleep(FAST.duration)
    permit = asyncio.create_task(lease.permit())
    await asyncio.sleep(3 * FAST.renew_every)
    assert not permit.done()  # the lease could have expired: no write may go out
    store.away = False
    await asyncio.wait_for(permit, 2.0)
    keeper.cancel()


async def test_a_renewal_that_finds_another_holder_stops_the_run() -> None:
    store = MemoryLeases()
    lease = _lease(store, "a")
    assert await _acquired(lease)
    record = store.leases[("ns", "bulktermination.cleanup")]
    store.leases[("ns", "bulktermination.cleanup")] = dataclasses.replace(
        record, holder="b", resource_version="99"
    )
    await lease.renew()
    with pytest.raises(LeaseLost) as lost:
        await lease.permit()
    assert lost.value.holder == "b"


class CountingApi:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def list_states(self, kind: Kind, **_: object) -> list[object]:
        self.calls["list"] += 1
        return []

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[object]:
        self.calls["bulk_patch"] += 1
        return []


async def test_exclusive_api_lets_reads_through_and_holds_writes_without_the_lease() -> None:
    store = MemoryLeases()
    lease = _lease(store, "a")  # not acquired
    api = CountingApi()
    exclusive = ExclusiveApi(api, lease)  # type: ignore[arg-type]
    await exclusive.list_states(Kind.DEPLOYMENT)
    write = asyncio.create_task(
        exclusive.bulk_patch(Kind.DEPLOYMENT, [("d1", TargetStatus.STOPPED)])
    )
    await asyncio.sleep(0.2)
    assert api.calls == Counter({"list": 1})
    assert await _acquired(lease)
    await asyncio.wait_for(write, 2.0)
    assert api.calls == Counter({"list": 1, "bulk_patch": 1})


def test_a_long_cr_name_gets_a_hashed_lease_name_within_the_limit() -> None:
    long_name = "a" * 253
    name = lease_name(long_name)
    assert len(name) <= 253 and name.startswith("bulktermination.")
    assert name != lease_name("a" * 252 + "b")


class ForbiddenLeases(MemoryLeases):
    async def read(self, namespace: str, name: str) -> LeaseRecord | None:
        raise LeaseForbidden("the operator may not read or write Leases in this namespace")


async def test_a_run_refused_its_lease_stalls_over_its_restored_record(simulator: Any) -> None:
    """RBAC without Leases: the run stalls ``LeaseForbidden``, sends nothing, and the status
    it writes is the run's own record (its counters), not a blank one."""
    kube = FakeKube.with_key(simulator)
    target = ("Deployment", "dep-0001", "STOPPED")
    simulator.add_item(Kind.DEPLOYMENT, "dep-0001", Status.RUNNING)
    restored = Progress(total=1, pending=1, progress="0/1", start_time=datetime.now(UTC))
    restored = restored.model_copy(
        update={
            "conditions": build_conditions(
                [], Situation(Phase.RUNNING, "Running", "resumed"), now=datetime.now(UTC)
            )
        }
    )
    lease = RunLease(ForbiddenLeases(), "ns", OWNER, holder="a", timing=FAST)
    rec = reconciler(
        kube,
        FakeEvents(),
        spec(target),
        restored.to_status(),
        ref=replace(REF, generation=1),
        lease=lease,
    )
    await run_for(0.5, rec)
    stalled = condition(kube.status, "Stalled")
    assert stalled is not None and stalled["status"] == "True"
    assert stalled["reason"] == "LeaseForbidden"
    assert kube.status["total"] == 1 and "startTime" in kube.status
    assert simulator.counters["PATCH /lm/deployments"] == 0


class SlowReplace(MemoryLeases):
    """Replaces land only after ``delay`` seconds (an API server that is slow to answer, or a
    call waiting out an outage), stamped as the caller sent them."""

    delay = 0.0

    async def replace(self, namespace: str, name: str, record: LeaseRecord, owner: Owner) -> str:
        await asyncio.sleep(self.delay)
        return await super().replace(namespace, name, record, owner)


async def test_a_renewal_that_lands_late_counts_from_when_it_was_sent() -> None:
    """The Lease on the server says when it was renewed as of the send; the holder must not
    count itself fresh for longer than another operator will wait, however long the write took
    (else both hold it: two senders for one run)."""
    store = SlowReplace()
    a = _lease(store, "a")
    assert await _acquired(a)
    store.delay = FAST.duration * 1.5  # the renewal lands after the Lease had expired
    await a.renew()
    store.delay = 0.0
    b = _lease(store, "b")
    assert await _acquired(b, within=1.0)  # the Lease had expired: b takes it at once
    with pytest.raises((LeaseLost, TimeoutError)):
        await asyncio.wait_for(a.permit(), 0.05)  # a may not write any more
