"""The per-CR flow without Kubernetes: fake Secret store and event sink, real engine, real
simulator over HTTP. kopf only adapts this; the end-to-end tests cover the adaptation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.reconciler import Reconciler, is_terminal
from bulkterm.simulator import Simulator
from tests.k8s.support import (
    FAST,
    MIXED,
    REF,
    FakeEvents,
    FakeKube,
    condition,
    reconciler,
    run_for,
    running_for_deletion,
    seed_mixed,
    spec,
)

# These runs are about bulk PATCH rounds: the simulator's bulkUpdates is on explicitly.
pytestmark = pytest.mark.simulator(bulk_updates=True)


async def test_first_write_precedes_any_ai_api_call(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    seed_mixed(simulator)
    await reconciler(kube, events, spec(*MIXED)).run(asyncio.Event())
    first = kube.writes[0]
    assert kube.api_calls_at_write[0] == 0
    assert first["observedGeneration"] == 3
    assert condition(first, "Reconciling")["status"] == "True"
    assert condition(first, "Ready")["status"] == "False"
    assert all(c["observedGeneration"] == 3 for c in first["conditions"])


async def test_mixed_resource_completes_with_events(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    seed_mixed(simulator)
    await reconciler(kube, events, spec(*MIXED)).run(asyncio.Event())
    status = kube.status
    assert condition(status, "Complete")["status"] == "True"
    assert condition(status, "Ready")["status"] == "True"
    assert (status["succeeded"], status["failed"], status["progress"]) == (5, 0, "5/5")
    assert simulator.state_of(Kind.DEPLOYMENT, "dep-run2") == Status.STOPPED
    assert (
        simulator.item(Kind.DEPLOYMENT, "dep-run1") is None
        or simulator.item(Kind.DEPLOYMENT, "dep-run1").target_status == "DELETED"
    )  # type: ignore[union-attr]
    assert events.reasons()[0] == "Started" and events.reasons()[-1] == "Completed"
    assert "BatchSubmitted" in events.reasons()
    assert simulator.violations == []


async def test_failures_end_failed_and_are_listed(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    body = spec(("Deployment", "dep-run1", "STOPPED"), ("Deployment", "dep-miss", "STOPPED"))
    await reconciler(kube, events, body).run(asyncio.Event())
    status = kube.status
    assert condition(status, "Failed")["status"] == "True"
    assert condition(status, "Stalled")["status"] == "True"
    assert [(f["id"], f["reason"]) for f in status["failures"]] == [("dep-miss", "NotFound")]
    assert "TargetFailed" in events.reasons() and events.reasons()[-1] == "Failed"


async def test_missing_secret_stalls_then_recovers_when_it_appears(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    body = spec(("Deployment", "dep-run1", "STOPPED"), secret="later")
    task = asyncio.create_task(reconciler(kube, events, body).run(asyncio.Event()))
    for _ in range(100):
        await asyncio.sleep(0.02)
        if kube.writes and condition(kube.status, "Stalled")["status"] == "True":
            break
    stalled = kube.status
    assert condition(stalled, "Stalled")["reason"] == "SecretNotFound"
    assert condition(stalled, "Reconciling")["status"] == "False"
    # The Event names the problem as the condition does, not a catch-all.
    assert events.warnings() == ["SecretNotFound"]
    kube.put_secret("later", "serviceKey", simulator.service_key())
    await asyncio.wait_for(task, 10)
    assert condition(kube.status, "Complete")["status"] == "True"
    assert condition(kube.status, "Stalled")["status"] == "False"


async def test_malformed_key_stalls_naming_the_field_never_the_secret(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    key = dict(simulator.service_key())
    del key["url"]
    kube.put_secret("aicore", "serviceKey", key)
    await run_for(0.3, reconciler(kube, events, spec(("Deployment", "dep-x001", "STOPPED"))))
    stalled = condition(kube.status, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "InvalidServiceKey")
    assert "'url'" in stalled["message"]
    assert events.warnings() == ["InvalidServiceKey"]
    everything = json.dumps(kube.writes) + json.dumps(events.posted)
    assert simulator.config.client_secret not in everything


async def test_rejected_credentials_stall_as_unauthorized(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    key = dict(simulator.service_key())
    key["clientsecret"] = "not-the-secret"
    kube.put_secret("aicore", "serviceKey", key)
    await run_for(0.5, reconciler(kube, events, spec(("Deployment", "dep-x001", "STOPPED"))))
    assert condition(kube.status, "Stalled")["reason"] == "Unauthorized"
    assert "not-the-secret" not in json.dumps(kube.writes) + json.dumps(events.posted)
    assert events.warnings() == ["Unauthorized"]


async def test_a_service_key_url_the_ai_api_does_not_serve_stalls_naming_it(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-x001", Status.RUNNING)
    key = dict(simulator.service_key())
    key["serviceurls"] = {"AI_API_URL": f"{simulator.url}/wrong"}
    kube.put_secret("aicore", "serviceKey", key)
    await run_for(0.5, reconciler(kube, events, spec(("Deployment", "dep-x001", "DELETED"))))
    stalled = condition(kube.status, "Stalled")
    assert (stalled["status"], stalled["reason"]) == ("True", "EndpointNotFound")
    assert f"{simulator.url}/wrong" in stalled["message"]
    assert kube.status.get("succeeded", 0) == 0
    assert events.warnings() == ["EndpointNotFound"]
    assert simulator.state_of(Kind.DEPLOYMENT, "dep-x001") is Status.RUNNING


async def test_cross_namespace_secret_reference_is_refused(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    body = spec(("Deployment", "dep-x001", "STOPPED"))
    body["connection"]["secretRef"]["namespace"] = "kube-system"
    await run_for(0.2, reconciler(kube, events, body))
    assert condition(kube.status, "Stalled")["reason"] == "CrossNamespaceSecretRefused"
    assert events.warnings() == ["CrossNamespaceSecretRefused"]
    assert sum(simulator.counters.values()) == 0


async def test_stop_mid_run_ends_promptly_and_resume_finishes_without_repeats(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    targets = running_for_deletion(simulator, 30, stopping=1.0, deletion=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler(kube, events, spec(*targets)).run(stop))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if simulator.counters["PATCH /lm/deployments"] >= 1:
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    assert not is_terminal(kube.status)
    patches_before = simulator.counters["PATCH /lm/deployments"]
    await reconciler(kube, events, spec(*targets), status=kube.status).run(asyncio.Event())
    assert condition(kube.status, "Complete")["status"] == "True"
    assert simulator.violations == []
    # The STOPs were accepted before the restart: after it, only the DELETEs are sent.
    assert simulator.counters["PATCH /lm/deployments"] - patches_before == 1


async def test_terminal_status_is_never_reconciled_again(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    body = spec(("Deployment", "dep-run1", "STOPPED"))
    await reconciler(kube, events, body).run(asyncio.Event())
    final, writes = kube.status, len(kube.writes)
    calls = sum(simulator.counters.values())
    await reconciler(kube, events, body, status=final).run(asyncio.Event())
    assert len(kube.writes) == writes and sum(simulator.counters.values()) == calls


async def test_status_writes_are_throttled(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    targets = running_for_deletion(simulator, 20, stopping=1.5, deletion=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await reconciler(kube, events, spec(*targets), status_interval=1.0).run(asyncio.Event())
    elapsed = loop.time() - started
    # One per interval, plus phase changes (first visit, Complete), one before each round of
    # sends (crash safety) and the forced final write.
    send_rounds = simulator.counters["PATCH /lm/deployments"]
    assert len(kube.writes) <= elapsed / 1.0 + 4 + send_rounds
    assert condition(kube.status, "Complete")["status"] == "True"


async def test_invalid_spec_fails_permanently(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    body = {"targets": [{"id": "x", "targetStatus": "STOPPED"}]}
    await reconciler(kube, events, body).run(asyncio.Event())
    failed = condition(kube.status, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "InvalidSpec")
    assert "spec.targets[0].id" in failed["message"]


async def test_reordered_targets_after_the_start_fail_instead_of_mixing_indexes(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    from dataclasses import replace

    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    simulator.add_item(Kind.DEPLOYMENT, "dep-run2", Status.RUNNING)
    body = spec(("Deployment", "dep-run1", "STOPPED"), ("Deployment", "dep-run2", "STOPPED"))
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler(kube, events, body).run(stop))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if kube.writes and kube.status.get("startTime"):
            break
    stop.set()
    await asyncio.wait_for(task, 5)
    calls = sum(simulator.counters.values())
    reordered = {**body, "targets": list(reversed(body["targets"]))}
    rec = Reconciler(
        replace(REF, generation=REF.generation + 1),
        reordered,
        kube.status,
        kube=kube,
        events=events,
        config=OperatorConfig(status_interval=0.2, allow_plain_http=True),
        engine_settings=FAST,
    )
    await rec.run(asyncio.Event())
    failed = condition(kube.status, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "SpecChanged")
    assert sum(simulator.counters.values()) == calls


async def test_completion_is_reported_even_when_kopf_stops_the_daemon_on_the_terminal_write(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    """kopf's ``when`` filter stops the daemon as soon as the terminal status lands, which can
    be before the engine has returned: that is an end, not a deletion."""
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    stop = asyncio.Event()
    original = kube.patch_status

    async def patch_and_react(namespace: str, name: str, status: dict[str, Any]) -> None:
        await original(namespace, name, status)
        if is_terminal(status):
            stop.set()
            await asyncio.sleep(0.05)  # kopf reacts before the engine's last step returns

    kube.patch_status = patch_and_react  # type: ignore[method-assign]
    await reconciler(kube, events, spec(("Deployment", "dep-run1", "STOPPED"))).run(stop)
    assert condition(kube.status, "Complete")["status"] == "True"
    assert events.reasons()[-1] == "Completed"


async def test_a_missing_key_in_the_secret_is_the_event_reason_too(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    kube.put_secret("aicore", "other", simulator.service_key())
    await run_for(0.3, reconciler(kube, events, spec(("Deployment", "dep-x001", "STOPPED"))))
    assert condition(kube.status, "Stalled")["reason"] == "SecretKeyNotFound"
    assert events.warnings() == ["SecretKeyNotFound"]
    assert "CredentialsInvalid" not in events.reasons()
