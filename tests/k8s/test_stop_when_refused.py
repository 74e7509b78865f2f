"""A run stopped while the API server refuses the operator (a revoked token: 401; RBAC taken
away: 403) ends at once: its last status write and its Lease's release are tried once each,
never waited for, and a refusal is one line, not a retry loop, a raise or a traceback.

SIGTERM gives the whole operator ``terminationGracePeriodSeconds`` (30 s by default); kopf
waits 5 s (the daemon's cancellation backoff) and then cancels a run that has not ended. The
real operator against the real API server: ``tests/e2e/test_revoked_token.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from bulkterm.k8s.kubeapi import ApiWeather, without_waiting
from bulkterm.k8s.leases import LeaseConflict, RunLease
from bulkterm.k8s.throttle import StatusThrottle
from bulkterm.simulator import Simulator
from tests.k8s.support import NS, FakeEvents, FakeKube, reconciler, running_for_deletion, spec
from tests.k8s.test_leases import FAST, OWNER, MemoryLeases

pytestmark = pytest.mark.simulator(bulk_updates=True)


class RefusingKube(FakeKube):
    """Status writes go through an :class:`ApiWeather`, as ``KubeApi``'s do; once ``refuse``
    is set, the API server answers them with it."""

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.weather = ApiWeather(backoff=(0.05,))
        self.refuse: int | None = None
        self.refused = 0

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> int | None:
        def patch() -> None:
            if self.refuse is not None:
                self.refused += 1
                raise ApiException(status=self.refuse)

        await self.weather.call("write status", patch)
        return await super().patch_status(namespace, name, status)


class RefusingLeases(MemoryLeases):
    def __init__(self) -> None:
        super().__init__()
        self.refuse: int | None = None

    def _check(self) -> None:
        if self.refuse is not None:
            raise ApiException(status=self.refuse)
        super()._check()


@pytest.mark.parametrize("code", [401, 403])
@pytest.mark.parametrize("warming_up", [False, True], ids=["", "after-an-outage"])
async def test_a_run_stopped_while_refused_ends_at_once(
    code: int, warming_up: bool, simulator: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    kube = RefusingKube.with_key(simulator)
    assert isinstance(kube, RefusingKube)
    store = RefusingLeases()
    lease = RunLease(store, NS, OWNER, holder="me", timing=FAST)
    targets = running_for_deletion(simulator, 5, stopping=0.3, deletion=5.0)
    rec = reconciler(kube, FakeEvents(), spec(*targets), lease=lease)
    stop = asyncio.Event()
    task = asyncio.create_task(rec.run(stop))
    for _ in range(200):  # the bulk STOP went out
        await asyncio.sleep(0.02)
        if simulator.counters["PATCH /lm/deployments"] >= 1:
            break
    kube.refuse = store.refuse = code
    if warming_up:  # the API server came back a moment ago: 401/403 are waited for 30 s
        kube.weather.back_at = time.monotonic()
    for _ in range(200):  # the stops complete: progress to write, refused
        await asyncio.sleep(0.02)
        if kube.refused:
            break
    assert kube.refused
    await asyncio.sleep(0.3)  # retrying

    with caplog.at_level(logging.WARNING):
        began = time.monotonic()
        stop.set()  # SIGTERM: kopf sets the daemon's stopped flag
        await asyncio.wait_for(task, 10)  # no StatusWriteError: the operator is stopping
        took = time.monotonic() - began
    assert took < 1.0, took  # before: 15 s of close() retries (30 s more after an outage)
    lines = [r.getMessage() for r in caplog.records]
    assert len([m for m in lines if "not released" in m]) == 1, lines
    # The last status, if one was held back (not one the stop cut short), is tried once.
    assert len([m for m in lines if "stopped without writing its last status" in m]) <= 1, lines
    assert all(r.exc_info is None for r in caplog.records)
    refused = kube.refused
    await asyncio.sleep(1.2)  # nothing of the run retries afterwards
    assert kube.refused == refused


async def test_without_waiting_an_outage_or_a_warming_refusal_raises_at_once() -> None:
    weather = ApiWeather(backoff=(5.0,))
    calls = 0

    def away() -> None:
        nonlocal calls
        calls += 1
        raise urllib3.exceptions.MaxRetryError(None, "/status", reason=ConnectionRefusedError(111))  # type: ignore[arg-type]

    def unauthorized() -> None:
        nonlocal calls
        calls += 1
        raise ApiException(status=401)

    with without_waiting():
        with pytest.raises(urllib3.exceptions.MaxRetryError):
            await asyncio.wait_for(weather.call("write status", away), 1)
        weather._back()
        weather.back_at = time.monotonic()  # warming up: a 401 would be waited for
        with pytest.raises(ApiException):
            await asyncio.wait_for(weather.call("write status", unauthorized), 1)
    assert calls == 2


async def test_a_refused_release_is_one_line_and_a_lost_race_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RefusingLeases()
    lease = RunLease(store, NS, OWNER, holder="me", timing=FAST)
    assert await lease.acquire(asyncio.Event())
    store.refuse = 401
    with caplog.at_level(logging.WARNING, logger="bulkterm.k8s.leases"):
        await lease.release()
        await lease.release()  # once only
    (line,) = [r.getMessage() for r in caplog.records]
    assert (
        "lease ml-team/bulktermination.ml-team.cleanup not released (ApiException HTTP 401)" in line
    )

    caplog.clear()
    other = RunLease(MemoryLeases(), NS, OWNER, holder="me", timing=FAST)
    assert await other.acquire(asyncio.Event())

    async def raced(namespace: str, name: str, resource_version: str) -> None:
        raise LeaseConflict("changed")

    other._store.delete = raced  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="bulkterm.k8s.leases"):
        await other.release()
    assert caplog.records == []


async def test_failed_forced_writes_leave_no_flusher_retrying_after_close() -> None:
    attempts = 0

    async def refused(status: dict[str, Any]) -> None:
        nonlocal attempts
        attempts += 1
        raise ApiException(status=403)

    throttle = StatusThrottle(refused, 0.05)
    for done in range(5):  # each failed forced write used to start one more flusher
        await throttle.offer({"succeeded": done}, force=True)
    assert await throttle.close(retry_delays=()) is False
    after = attempts
    await asyncio.sleep(1.2)  # a flusher retries after max(interval, 1 s)
    assert attempts == after
