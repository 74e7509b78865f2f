"""The grant in the per-CR flow: a Secret that does not grant its use to the BulkTermination
stalls the run as ``SecretNotGranted`` before any AI API call, and the run proceeds by itself
once the Secret's owner adds the grant (the reconciler's generic stall-and-retry)."""

from __future__ import annotations

import asyncio
import json

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Simulator
from tests.k8s.support import REF, FakeEvents, FakeKube, condition, reconciler, run_for, spec


async def wait_stalled(kube: FakeKube) -> None:
    for _ in range(200):
        await asyncio.sleep(0.02)
        if kube.writes and condition(kube.status, "Stalled")["status"] == "True":
            return
    raise AssertionError(f"never stalled: {kube.status}")


async def test_an_ungranted_secret_stalls_without_an_ai_api_call_then_recovers(
    simulator: Simulator, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube(simulator)
    kube.put_secret("aicore", "serviceKey", simulator.service_key(), grant=None)
    body = spec(("Deployment", "dep-run1", "STOPPED"))
    task = asyncio.create_task(reconciler(kube, events, body).run(asyncio.Event()))
    await wait_stalled(kube)
    stalled = condition(kube.status, "Stalled")
    assert stalled["reason"] == "SecretNotGranted"
    assert "aiapi.bulkops.dev/allowed-bulkterminations" in stalled["message"]
    assert events.warnings() == ["SecretNotGranted"]
    assert sum(simulator.counters.values()) == 0  # not even a token request
    everything = json.dumps(kube.writes) + json.dumps(events.posted)
    assert simulator.config.client_secret not in everything

    kube.put_secret("aicore", "serviceKey", simulator.service_key(), grant="*")
    await asyncio.wait_for(task, 10)
    assert condition(kube.status, "Complete")["status"] == "True"
    assert condition(kube.status, "Stalled")["status"] == "False"
    assert simulator.state_of(Kind.DEPLOYMENT, "dep-run1") is Status.STOPPED


async def test_a_secret_granted_by_name_serves_that_bulktermination(
    simulator: Simulator, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube(simulator)
    kube.put_secret("aicore", "serviceKey", simulator.service_key(), grant=f"other,{REF.name}")
    await run_for(1.5, reconciler(kube, events, spec(("Deployment", "dep-run1", "STOPPED"))))
    assert condition(kube.status, "Complete")["status"] == "True"
