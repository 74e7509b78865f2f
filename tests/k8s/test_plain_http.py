"""HTTPS only: a service key with plain-HTTP URLs stalls its run as ``PlainHttpRefused``
before any request, unless the operator allows plain HTTP explicitly."""

from __future__ import annotations

import asyncio

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Simulator
from tests.k8s.support import FakeEvents, FakeKube, condition, reconciler, spec


async def _stalled(kube: FakeKube) -> dict[str, str]:
    for _ in range(200):
        await asyncio.sleep(0.02)
        if kube.writes and condition(kube.status, "Stalled")["status"] == "True":
            return condition(kube.status, "Stalled")
    raise AssertionError(f"never stalled: {kube.status}")


async def test_a_plain_http_key_is_refused_unless_the_operator_allows_it(
    simulator: Simulator, events: FakeEvents
) -> None:
    """HTTPS only: the simulator's plain-HTTP key stalls the run (nothing sent, not even a
    token request) under the operator's default configuration."""
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube(simulator)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    body = spec(("Deployment", "dep-run1", "STOPPED"))
    task = asyncio.create_task(
        reconciler(kube, events, body, allow_plain_http=False).run(asyncio.Event())
    )
    stalled = await _stalled(kube)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert stalled["reason"] == "PlainHttpRefused"
    assert "AI_API_URL" in stalled["message"] and "BULKTERM_ALLOW_PLAIN_HTTP" in stalled["message"]
    assert sum(simulator.counters.values()) == 0
