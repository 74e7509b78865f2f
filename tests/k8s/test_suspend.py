"""``spec.suspend`` in the per-CR flow: the operator reads it live (kopf's daemon body) before
every send; suspending or resuming changes the generation but not the spec the run acts on,
so the status observes the new generation and a later run resumes instead of refusing a
"changed spec"."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Simulator
from bulkterm.spec import run_spec_hash
from tests.k8s.support import REF, FakeEvents, FakeKube, ai_api_sends, condition, reconciler, spec


class Live:
    """The object as the watch shows it: a spec whose ``suspend`` the test flips, and a
    generation that moves with every flip, as the API server's does."""

    def __init__(self, body: dict[str, Any], generation: int = REF.generation) -> None:
        self.body = copy.deepcopy(body)
        self.gen = generation

    def spec(self) -> dict[str, Any]:
        return self.body

    def generation(self) -> int:
        return self.gen

    def annotations(self) -> dict[str, str]:
        return {}

    def set_suspend(self, value: bool) -> None:
        self.body["suspend"] = value
        self.gen += 1


async def wait_for(check: Any, turns: int = 500) -> None:
    for _ in range(turns):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("never happened")


async def started_then_stopped(
    kube: FakeKube, events: FakeEvents, body: dict[str, Any]
) -> dict[str, Any]:
    """The status a run left when its operator stopped it right after it started."""
    first = reconciler(kube, events, body, live=Live(body))
    stop = asyncio.Event()
    task = asyncio.create_task(first.run(stop))
    await wait_for(lambda: "startTime" in kube.status)
    stop.set()
    await asyncio.wait_for(task, 10)
    return dict(kube.status)


async def test_a_suspended_run_sends_nothing_and_finishes_once_resumed(
    simulator: Simulator, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube.with_key(simulator)
    body = spec(("Deployment", "dep-run1", "STOPPED"), suspend=True, pollIntervalSeconds=1)
    live = Live(body)
    run = asyncio.create_task(reconciler(kube, events, body, live=live).run(asyncio.Event()))
    await wait_for(lambda: "Suspended" in str(kube.status.get("conditions")))
    await asyncio.sleep(0.5)
    assert ai_api_sends(simulator) == 0
    assert condition(kube.status, "Reconciling")["status"] == "False"

    live.set_suspend(False)
    await asyncio.wait_for(run, 15)
    assert simulator.state_of(Kind.DEPLOYMENT, "dep-run1") is Status.STOPPED
    assert condition(kube.status, "Complete")["status"] == "True"
    resumed = condition(kube.status, "Suspended")
    assert (resumed["status"], resumed["reason"]) == ("False", "Resumed")
    # Resuming moved the generation: the status observes it, and no change is "ignored".
    assert kube.status["observedGeneration"] == REF.generation + 1
    assert "SpecChangeIgnored" not in [reason for _, reason, _ in events.posted]
    assert kube.status["runSpecHash"] == run_spec_hash(body)


async def test_a_run_restarted_after_a_suspend_only_change_resumes_from_its_record(
    simulator: Simulator, events: FakeEvents
) -> None:
    """Suspended while no operator ran: the stored status is of the old generation, and the
    recorded runSpecHash says that only suspend changed."""
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube.with_key(simulator)
    body = spec(("Deployment", "dep-run1", "STOPPED"), pollIntervalSeconds=1)
    saved = await started_then_stopped(kube, events, body)

    later = REF.__class__(REF.namespace, REF.name, REF.generation + 2, REF.created)
    resumed = reconciler(kube, events, body, saved, ref=later, live=Live(body, later.generation))
    await asyncio.wait_for(resumed.run(asyncio.Event()), 15)
    assert condition(kube.status, "Complete")["status"] == "True"
    assert kube.status["observedGeneration"] == later.generation


async def test_a_run_restarted_after_a_real_spec_change_is_still_refused(
    simulator: Simulator, events: FakeEvents
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    kube = FakeKube.with_key(simulator)
    body = spec(("Deployment", "dep-run1", "STOPPED"), pollIntervalSeconds=1)
    saved = await started_then_stopped(kube, events, body)

    changed = {**body, "batchSize": 7}
    later = REF.__class__(REF.namespace, REF.name, REF.generation + 1, REF.created)
    await asyncio.wait_for(
        reconciler(kube, events, changed, saved, ref=later).run(asyncio.Event()), 15
    )
    failed = condition(kube.status, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "SpecChanged")
