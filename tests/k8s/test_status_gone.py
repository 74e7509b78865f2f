"""A BulkTermination deleted under its run (the API server answers its status writes 404) stops
the run; that is not an error: no StatusWriteError, no retries, no warning."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from bulkterm.k8s.throttle import StatusThrottle
from bulkterm.simulator import Simulator
from tests.k8s.support import (
    FakeEvents,
    FakeKube,
    ai_api_sends,
    reconciler,
    running_for_deletion,
    spec,
)

pytestmark = pytest.mark.simulator(bulk_updates=True)


class DeletedAfter(FakeKube):
    """Status writes land until ``after`` have landed; then the resource is gone (404)."""

    def __init__(self, sim: Simulator, after: int) -> None:
        super().__init__(sim)
        self.after = after
        self.refused = 0

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        if len(self.writes) >= self.after:
            self.refused += 1
            raise ApiException(status=404, reason="Not Found")
        await super().patch_status(namespace, name, status)


async def test_a_404_marks_the_resource_gone_and_is_not_retried() -> None:
    attempts: list[dict[str, Any]] = []

    async def write(s: dict[str, Any]) -> None:
        attempts.append(s)
        raise ApiException(status=404, reason="Not Found")

    throttle = StatusThrottle(write, 0.0)
    assert await throttle.offer({"succeeded": 1}, force=True) is False
    assert throttle.gone
    assert await throttle.offer({"succeeded": 2}, force=True) is False
    assert await throttle.close((0.0, 0.0)) is False
    assert len(attempts) == 1 and throttle.failures == 0


async def test_a_run_whose_resource_is_deleted_stops_without_error(
    simulator: Simulator, events: FakeEvents, caplog: pytest.LogCaptureFixture
) -> None:
    kube = DeletedAfter(simulator, after=1)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    targets = running_for_deletion(simulator, 3, stopping=30.0, deletion=1.0)
    run = reconciler(kube, events, spec(*targets))
    with caplog.at_level(logging.WARNING):
        await asyncio.wait_for(run.run(asyncio.Event()), 20)
    assert run.resource_gone
    assert kube.refused == 1  # the first refused write ends it: no retries
    assert ai_api_sends(simulator) == 0  # its sends were never announced, so never sent
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
