"""One sender per BulkTermination: the run's Lease, against an in-memory Lease store.

The store behaves as the API server does for Leases (create refuses an existing name, replace
and delete refuse a stale resourceVersion); ``away`` makes every call fail as during an outage.
The runs' Leases live in the operator's namespace (``LEASES``), not the CR's.
``tests/e2e/test_lease_store.py`` holds it to the real API server's behaviour. Timings are
shrunk to tenths of a second; the real operators' side is in ``tests/e2e/test_exclusive.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import Phase, Progress, Situation
from bulkterm.engine.progress import build_conditions
from bulkterm.k8s import leases
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.leases import (
    ExclusiveApi,
    LeaseConflict,
    LeaseForbidden,
    LeaseLost,
    LeaseRecord,
    LeaseTiming,
    Owner,
    RunLease,
    StoredLease,
    lease_name,
    lease_namespace,
    sweep_forever,
    sweep_leases,
)
from tests.k8s.support import REF, FakeEvents, FakeKube, condition, reconciler, run_for, spec

FAST = LeaseTiming(duration=0.6, renew_every=0.1, margin=0.2, retry_every=0.05)
OWNER = Owner(namespace="ml-team", name="cleanup", uid="uid-1")
#: The operator's namespace, where the runs' Leases live.
LEASES = "operators"
KEY = (LEASES, "bulktermination.ml-team.cleanup")


class MemoryLeases:
    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], LeaseRecord] = {}
        self.owners: dict[tuple[str, str], Owner] = {}
        #: The BulkTerminations that exist: (namespace, name) → uid.
        self.crs: dict[tuple[str, str], str] = {}
        self.version = 0
        self.away = False

    def _check(self) -> None:
        if self.away:
            raise ConnectionRefusedError("the API server is away")

    def _bump(self, key: tuple[str, str], record: LeaseRecord, owner: Owner) -> str:
        self.version += 1
        # The uid is the one the Lease's metadata names, as the real store writes it.
        stored = dataclasses.replace(record, resource_version=str(self.version), cr_uid=owner.uid)
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

    async def list(self, namespace: str) -> list[StoredLease]:
        self._check()
        return [
            StoredLease(name, dataclasses.replace(record), self.owners[(ns, name)])
            for (ns, name), record in self.leases.items()
            if ns == namespace
        ]

    async def bulktermination_uid(self, namespace: str, name: str) -> str | None:
        self._check()
        return self.crs.get((namespace, name))

    def holder(self, owner: Owner = OWNER) -> str | None:
        record = self.leases.get((LEASES, lease_name(owner.namespace, owner.name)))
        return record.holder if record else None


def _lease(store: MemoryLeases, holder: str, owner: Owner = OWNER) -> RunLease:
    return RunLease(store, LEASES, owner, holder=holder, timing=FAST)


async def _acquired(lease: RunLease, within: float = 3.0) -> bool:
    return await asyncio.wait_for(lease.acquire(asyncio.Event()), within)


async def test_the_first_run_creates_the_lease_in_the_operators_namespace_naming_its_cr() -> None:
    store = MemoryLeases()
    assert await _acquired(_lease(store, "a"))
    assert store.holder() == "a"
    assert list(store.leases) == [KEY]
    assert store.owners[KEY] == OWNER


async def test_two_crs_of_one_name_in_two_namespaces_hold_two_leases_at_once() -> None:
    store = MemoryLeases()
    team_a = Owner(namespace="team-a", name="cleanup", uid="uid-a")
    team_b = Owner(namespace="team-b", name="cleanup", uid="uid-b")
    assert await _acquired(_lease(store, "a", team_a), within=FAST.duration / 2)
    assert await _acquired(_lease(store, "b", team_b), within=FAST.duration / 2)
    assert (store.holder(team_a), store.holder(team_b)) == ("a", "b")
    assert sorted(name for _, name in store.leases) == [
        "bulktermination.team-a.cleanup",
        "bulktermination.team-b.cleanup",
    ]


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
    assert store.leases[KEY].transitions == 1


async def test_a_lease_left_by_a_deleted_cr_of_the_same_name_is_taken_at_once() -> None:
    store = MemoryLeases()
    old = _lease(store, "a", Owner(namespace=OWNER.namespace, name=OWNER.name, uid="uid-old"))
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
    record = store.leases[KEY]
    store.leases[KEY] = dataclasses.replace(record, holder="b", resource_version="99")
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


def test_the_lease_name_holds_the_crs_namespace_and_name() -> None:
    assert lease_name("team-a", "cleanup") == "bulktermination.team-a.cleanup"
    assert lease_name("team-a", "cleanup") != lease_name("team-b", "cleanup")


#: A DNS subdomain (RFC 1123), as metadata.name of a Lease must be.
SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


@pytest.mark.parametrize(
    "cr_name",
    # Cut at 220 characters of "<namespace>.<name>": the name's 156th is the last kept.
    [
        "a" * 253,
        "a" * 155 + "." + "b" * 97,
        "a" * 154 + "-." + "b" * 97,
        "a" * 156 + "." + "b" * 96,
    ],
)
def test_a_long_name_gets_a_hashed_lease_name_that_is_still_a_valid_name(cr_name: str) -> None:
    namespace = "n" * 63
    name = lease_name(namespace, cr_name)
    assert len(name) <= 253 and name.startswith(f"bulktermination.{namespace}.")
    assert SUBDOMAIN.fullmatch(name), name
    assert name != lease_name(namespace, cr_name[:-1] + "c")
    assert name != lease_name("m" + namespace[1:], cr_name)


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
    lease = RunLease(ForbiddenLeases(), LEASES, OWNER, holder="a", timing=FAST)
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


# --- Leases left behind (``sweep_leases``) ------------------------------------------------


async def _left_behind(store: MemoryLeases, owner: Owner = OWNER) -> None:
    """A run that took its Lease and then died (SIGKILL): never renewed, never released."""
    assert await _acquired(_lease(store, "dead", owner))


async def test_an_expired_lease_whose_cr_is_gone_is_swept() -> None:
    store = MemoryLeases()  # no BulkTermination exists
    await _left_behind(store)
    await asyncio.sleep(FAST.duration)
    assert await sweep_leases(store, LEASES) == [KEY[1]]
    assert store.leases == {}


async def test_an_expired_lease_whose_cr_was_recreated_under_another_uid_is_swept() -> None:
    store = MemoryLeases()
    store.crs[(OWNER.namespace, OWNER.name)] = "uid-2"  # deleted, and created again
    await _left_behind(store)
    await asyncio.sleep(FAST.duration)
    assert await sweep_leases(store, LEASES) == [KEY[1]]


async def test_a_lease_still_renewed_is_kept_even_when_its_cr_is_gone() -> None:
    store = MemoryLeases()
    lease = _lease(store, "a")
    assert await _acquired(lease)
    keeper = asyncio.create_task(lease.keep())
    await asyncio.sleep(FAST.duration * 1.5)
    assert await sweep_leases(store, LEASES) == []
    assert store.holder() == "a"
    keeper.cancel()


async def test_an_expired_lease_whose_cr_still_exists_is_kept_for_its_next_run() -> None:
    store = MemoryLeases()
    store.crs[(OWNER.namespace, OWNER.name)] = OWNER.uid
    await _left_behind(store)
    await asyncio.sleep(FAST.duration)
    assert await sweep_leases(store, LEASES) == []
    assert KEY in store.leases


class UnreadableCrs(MemoryLeases):
    async def bulktermination_uid(self, namespace: str, name: str) -> str | None:
        raise ApiException(status=403)  # a namespace this operator does not watch


async def test_a_lease_whose_cr_cannot_be_read_is_kept() -> None:
    store = UnreadableCrs()
    await _left_behind(store)
    await asyncio.sleep(FAST.duration)
    assert await sweep_leases(store, LEASES) == []
    assert KEY in store.leases


async def test_a_lease_taken_again_after_the_listing_is_not_swept() -> None:
    store = MemoryLeases()
    await _left_behind(store)
    await asyncio.sleep(FAST.duration)
    listed = await store.list(LEASES)

    async def listing_then_a_new_run(namespace: str) -> list[StoredLease]:
        assert await _acquired(_lease(store, "b"))  # between the list and the delete
        return listed

    store.list = listing_then_a_new_run  # type: ignore[method-assign]
    assert await sweep_leases(store, LEASES) == []
    assert store.holder() == "b"


async def test_only_the_leases_of_the_operators_namespace_are_swept() -> None:
    store = MemoryLeases()
    await _left_behind(store)
    await asyncio.sleep(FAST.duration)
    assert await sweep_leases(store, "elsewhere") == []
    assert KEY in store.leases


async def test_the_sweep_runs_at_once_and_again_until_cancelled() -> None:
    store = MemoryLeases()
    await _left_behind(store)
    sweeper = asyncio.create_task(sweep_forever(store, LEASES, every=0.1))
    try:
        await asyncio.sleep(FAST.duration + 0.3)
        assert store.leases == {}
    finally:
        sweeper.cancel()
        await asyncio.gather(sweeper, return_exceptions=True)
    assert sweeper.cancelled()


# --- where the Leases live (``lease_namespace``) -------------------------------------------


@pytest.fixture
def outside_a_pod(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No POD_NAMESPACE, no service-account namespace file, and a kubeconfig of one's own."""
    monkeypatch.delenv("POD_NAMESPACE", raising=False)
    monkeypatch.setattr(leases, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    kubeconfig = tmp_path / "kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    return kubeconfig


def _kubeconfig(path: Path, namespace: str | None) -> None:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace is not None:
        context["namespace"] = namespace
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "here", "context": context}],
                "current-context": "here",
            }
        )
    )


def test_the_configured_lease_namespace_comes_first(
    outside_a_pod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "pods-own")
    assert lease_namespace("operators") == ("operators", "BULKTERM_LEASE_NAMESPACE")


def test_the_pods_namespace_is_the_default_lease_namespace(
    outside_a_pod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kubeconfig(outside_a_pod, "from-kubeconfig")
    monkeypatch.setenv("POD_NAMESPACE", "pods-own")
    assert lease_namespace(None) == ("pods-own", "POD_NAMESPACE")


def test_in_a_pod_without_pod_namespace_the_service_account_namespace_is_used(
    outside_a_pod: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mounted = tmp_path / "namespace"
    mounted.write_text("release-ns\n")
    monkeypatch.setattr(leases, "SERVICE_ACCOUNT_NAMESPACE", mounted)
    assert lease_namespace(None) == ("release-ns", str(mounted))


def test_outside_a_cluster_the_kubeconfig_contexts_namespace_is_used(outside_a_pod: Path) -> None:
    _kubeconfig(outside_a_pod, "dev")
    assert lease_namespace(None) == ("dev", "the kubeconfig context")


@pytest.mark.parametrize("kubeconfig", ["without a namespace", "missing"])
def test_with_no_namespace_anywhere_the_leases_go_to_default(
    outside_a_pod: Path, kubeconfig: str
) -> None:
    if kubeconfig != "missing":
        _kubeconfig(outside_a_pod, None)
    assert lease_namespace("").name == "default"


@pytest.mark.parametrize("value", ["Operators", "a.b", "-x", "x" * 64])
def test_a_lease_namespace_that_is_no_namespace_name_is_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        OperatorConfig(lease_namespace=value)


def test_an_empty_lease_namespace_setting_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULKTERM_LEASE_NAMESPACE", "")
    assert not OperatorConfig().lease_namespace
    monkeypatch.setenv("BULKTERM_LEASE_NAMESPACE", "operators")
    assert OperatorConfig().lease_namespace == "operators"


def test_the_default_timing_lets_a_standby_take_a_run_over_soon_after_a_sigkill() -> None:
    """A SIGKILLed holder's Lease expires within ``duration`` of the kill and a waiting
    standby looks again every ``retry_every``: with kopf's peering record (6 s by default),
    the run is taken over well within the 15 s the issue asks; a holder still renews in time
    (``renew_every`` inside the fresh window, with room for a slow write)."""
    from bulkterm.k8s.config import OperatorConfig

    timing = LeaseTiming()
    assert timing.duration <= OperatorConfig().peering_lifetime
    assert timing.duration + timing.retry_every <= 7.0
    assert timing.renew_every + 2.0 <= timing.duration - timing.margin
