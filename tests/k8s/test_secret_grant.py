"""Secret use in the per-CR flow: a run whose author's right to use the Secret cannot be
verified stalls as ``SecretUseUnverified`` before any AI API call, and proceeds by itself once
it can be (the reconciler's generic stall-and-retry); a name grant serves only when the
operator allows name grants."""

from __future__ import annotations

import asyncio
import json

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.secret_use import AdmissionTrust
from bulkterm.simulator import Simulator
from tests.k8s.support import (
    REF,
    TRUSTED,
    FakeEvents,
    FakeKube,
    condition,
    reconciler,
    run_for,
    spec,
)


async def wait_stalled(kube: FakeKube) -> None:
    for _ in range(200):
        await asyncio.sleep(0.02)
        if kube.writes and condition(kube.status, "Stalled")["status"] == "True":
            return
    raise AssertionError(f"never stalled: {kube.status}")


async def test_an_unverified_use_stalls_without_an_ai_api_call_then_recovers(
    simulator: Simulator, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube.with_key(simulator)
    kube.trust = AdmissionTrust.untrusted("ValidatingAdmissionPolicy x is not installed")
    body = spec(("Deployment", "dep-run1", "STOPPED"))
    task = asyncio.create_task(reconciler(kube, events, body).run(asyncio.Event()))
    await wait_stalled(kube)
    stalled = condition(kube.status, "Stalled")
    assert stalled["reason"] == "SecretUseUnverified"
    assert "ValidatingAdmissionPolicy x is not installed" in stalled["message"]
    assert events.warnings() == ["SecretUseUnverified"]
    assert sum(simulator.counters.values()) == 0  # not even a token request
    everything = json.dumps(kube.writes) + json.dumps(events.posted)
    assert simulator.config.client_secret not in everything

    kube.trust = TRUSTED
    await asyncio.wait_for(task, 10)
    assert condition(kube.status, "Complete")["status"] == "True"
    assert condition(kube.status, "Stalled")["status"] == "False"
    assert simulator.state_of(Kind.DEPLOYMENT, "dep-run1") is Status.STOPPED


async def test_a_name_grant_serves_that_bulktermination_when_name_grants_are_allowed(
    simulator: Simulator, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube(simulator)
    kube.trust = AdmissionTrust.untrusted("no policy")
    kube.allow_name_grants = True
    kube.put_secret("aicore", "serviceKey", simulator.service_key(), grant=f"other,{REF.name}")
    await run_for(1.5, reconciler(kube, events, spec(("Deployment", "dep-run1", "STOPPED"))))
    assert condition(kube.status, "Complete")["status"] == "True"
