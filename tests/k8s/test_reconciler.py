"""The per-CR flow without Kubernetes: fake Secret store and event sink, real engine, real
simulator over HTTP. kopf only adapts this; the end-to-end tests cover the adaptation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import EngineSettings
from bulkterm.k8s.config import OperatorConfig
from bulkterm.k8s.kubeapi import SecretProblem
from bulkterm.k8s.reconciler import CrRef, Reconciler, is_terminal
from bulkterm.simulator import Simulator

NS = "ml-team"
REF = CrRef(namespace=NS, name="cleanup", generation=3)
FAST = EngineSettings(min_poll_seconds=0.05, max_poll_seconds=0.2, resend_timeout_seconds=5)


class FakeKube:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.writes: list[dict[str, Any]] = []
        self.api_calls_at_write: list[int] = []

    def put_secret(self, name: str, key: str, value: bytes | dict[str, Any]) -> None:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.secrets[(NS, name)] = {key: raw}

    async def read_secret_value(self, namespace: str, name: str, key: str) -> bytes:
        data = self.secrets.get((namespace, name))
        if data is None:
            raise SecretProblem("SecretNotFound", f"Secret {namespace}/{name} does not exist")
        if key not in data:
            raise SecretProblem(
                "SecretKeyNotFound", f"Secret {namespace}/{name} has no key {key!r}"
            )
        return data[key]

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.api_calls_at_write.append(sum(self.sim.counters.values()))
        self.writes.append(status)

    @property
    def status(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for patch in self.writes:
            for k, v in patch.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
        return merged


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    def normal(self, reason: str, message: str) -> None:
        self.posted.append(("Normal", reason, message))

    def warning(self, reason: str, message: str) -> None:
        self.posted.append(("Warning", reason, message))

    def reasons(self) -> list[str]:
        return [r for _, r, _ in self.posted]


def spec(*targets: tuple[str, str, str], secret: str = "aicore", **extra: Any) -> dict[str, Any]:
    return {
        "connection": {"secretRef": {"name": secret}},
        "targets": [{"kind": k, "id": i, "targetStatus": t} for k, i, t in targets],
        **extra,
    }


def reconciler(
    kube: FakeKube,
    events: FakeEvents,
    body: dict[str, Any],
    status: dict[str, Any] | None = None,
    **config: Any,
) -> Reconciler:
    cfg = OperatorConfig(**{"status_interval": 0.2, "stalled_retry_seconds": 0.1, **config})
    return Reconciler(REF, body, status, kube=kube, events=events, config=cfg, engine_settings=FAST)


async def run_for(seconds: float, rec: Reconciler) -> None:
    """Run ``rec`` for ``seconds``, then stop it as kopf does (the stop event), and wait."""
    stop = asyncio.Event()
    task = asyncio.create_task(rec.run(stop))
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, 5)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


@pytest.fixture
def kube(simulator: Simulator) -> FakeKube:
    k = FakeKube(simulator)
    k.put_secret("aicore", "serviceKey", simulator.service_key())
    return k


@pytest.fixture
def events() -> FakeEvents:
    return FakeEvents()


MIXED = (
    ("Deployment", "dep-run1", "DELETED"),
    ("Deployment", "dep-run2", "STOPPED"),
    ("Deployment", "dep-unk1", "DELETED"),
    ("Execution", "exe-done", "DELETED"),
    ("Execution", "exe-dead", "STOPPED"),
)


def seed_mixed(sim: Simulator) -> None:
    sim.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "dep-run2", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "dep-unk1", Status.UNKNOWN, hold=True)  # no race with PENDING
    sim.add_item(Kind.EXECUTION, "exe-done", Status.COMPLETED)
    sim.add_item(Kind.EXECUTION, "exe-dead", Status.DEAD)


def running_for_deletion(
    sim: Simulator, n: int, *, stopping: float, deletion: float
) -> list[tuple[str, str, str]]:
    """``n`` RUNNING deployments bound for DELETED, with stops slow enough to catch mid-run."""
    from bulkterm.simulator import Timings

    sim.set_timings(
        Timings(
            unknown_seconds=0.1,
            pending_seconds=0.1,
            stop_delay_seconds=0.1,
            stopping_seconds=stopping,
            deletion_seconds=deletion,
        )
    )
    targets = [("Deployment", f"dep-{i:04d}", "DELETED") for i in range(n)]
    for _, item_id, _ in targets:
        sim.add_item(Kind.DEPLOYMENT, item_id, Status.RUNNING)
    return targets


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
    assert ("Warning", "CredentialsInvalid") in [(t, r) for t, r, _ in events.posted]
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
    assert events.reasons().count("CredentialsInvalid") == 1


async def test_cross_namespace_secret_reference_is_refused(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    body = spec(("Deployment", "dep-x001", "STOPPED"))
    body["connection"]["secretRef"]["namespace"] = "kube-system"
    await run_for(0.2, reconciler(kube, events, body))
    assert condition(kube.status, "Stalled")["reason"] == "CrossNamespaceSecretRefused"
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
        config=OperatorConfig(status_interval=0.2),
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
