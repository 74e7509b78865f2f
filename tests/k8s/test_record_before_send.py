"""Record before send: a record announcing sends must be on the API server before the sends.

The status written before a send is what a restarted operator reads to know what was sent. If
that write fails, the checkpoint answers False and nothing is sent; the run offers the record
again in a later round.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import InFlightGroup, Progress
from bulkterm.engine import run as run_module
from bulkterm.engine.decisions import Action
from bulkterm.simulator import Simulator
from tests.k8s.support import FakeEvents, FakeKube, ai_api_sends, condition, reconciler, spec

# These runs are about bulk PATCH rounds: the simulator's bulkUpdates is on explicitly.
pytestmark = pytest.mark.simulator(bulk_updates=True)


class RefusingSendRecords(FakeKube):
    """A Kubernetes API whose status write fails ``refusals`` times for a status announcing
    in-flight sends the last landed status did not hold."""

    def __init__(self, sim: Simulator, refusals: int) -> None:
        super().__init__(sim)
        self.refusals_left = refusals
        self.refused = 0
        self.sends_at_refusal: list[int] = []

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        groups = status.get("inFlightGroups")
        if groups and groups != self.status.get("inFlightGroups") and self.refusals_left > 0:
            self.refusals_left -= 1
            self.refused += 1
            self.sends_at_refusal.append(ai_api_sends(self.sim))
            raise RuntimeError("etcdserver: request timed out")
        await super().patch_status(namespace, name, status)


@pytest.mark.parametrize("refusals", [1, 3])
async def test_nothing_is_sent_until_the_record_of_the_send_has_landed(
    simulator: Simulator, events: FakeEvents, refusals: int
) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "dep-run1", Status.RUNNING)
    simulator.add_item(Kind.DEPLOYMENT, "dep-run2", Status.RUNNING)
    kube = RefusingSendRecords(simulator, refusals)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    body = spec(("Deployment", "dep-run1", "STOPPED"), ("Deployment", "dep-run2", "STOPPED"))
    await asyncio.wait_for(reconciler(kube, events, body).run(asyncio.Event()), 20)

    assert kube.refused == refusals
    assert kube.sends_at_refusal == [0] * refusals  # refused records were not acted on
    first_send_record = next(i for i, w in enumerate(kube.writes) if w.get("inFlightGroups"))
    assert kube.sends_at_write[first_send_record] == 0
    assert condition(kube.status, "Complete")["status"] == "True"
    # One bulk PATCH for both: the refused rounds sent nothing, so nothing was sent twice.
    assert simulator.counters["PATCH /lm/deployments"] == 1
    assert simulator.violations == []


class _SendingEngine:
    """Stands in for the engine: offers one record announcing a send, as the engine does
    before a bulk PATCH, up to five times while the checkpoint is refused."""

    outcomes: list[str]

    def __init__(self, spec: Any, api: Any, record: Progress | None, **_: Any) -> None:
        assert record is not None
        self._record = record
        type(self).outcomes = []

    @property
    def progress(self) -> Progress:
        return self._record

    async def run(self, reporter: Any) -> Progress:
        sending = self._record.model_copy(
            update={
                "pending": 0,
                "active": 1,
                "in_flight_groups": [
                    InFlightGroup(
                        action=Action.STOP, sent_at=datetime(2026, 1, 1, tzinfo=UTC), indexes="0"
                    )
                ],
            }
        )
        for _ in range(5):
            if not await reporter.offer(sending):
                type(self).outcomes.append("refused")
                continue
            type(self).outcomes.append("written")
            self._record = sending
            break
        return self._record


class _FailingWrites(FakeKube):
    def __init__(self, sim: Simulator, failures: int) -> None:
        super().__init__(sim)
        self.failures = failures
        self.attempts = 0

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.attempts += 1
        if status.get("inFlightGroups") and self.failures > 0:
            self.failures -= 1
            raise RuntimeError("HTTP 503")
        await super().patch_status(namespace, name, status)


async def test_a_checkpoint_whose_forced_write_fails_is_refused_until_it_lands(
    simulator: Simulator, events: FakeEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run_module, "Engine", _SendingEngine)
    kube = _FailingWrites(simulator, failures=2)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    body = spec(("Deployment", "dep-run1", "STOPPED"))
    await asyncio.wait_for(reconciler(kube, events, body).run(asyncio.Event()), 10)
    assert _SendingEngine.outcomes == ["refused", "refused", "written"]
    assert kube.status["inFlightGroups"] == [
        {"action": "STOP", "sentAt": "2026-01-01T00:00:00Z", "indexes": "0"}
    ]


async def test_a_record_without_new_sends_is_taken_though_its_write_fails(
    simulator: Simulator, events: FakeEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only records announcing sends are forced: a progress update whose write fails is held
    back and retried by the throttle, and the run goes on as if it had landed."""

    class _ObservingEngine(_SendingEngine):
        async def run(self, reporter: Any) -> Progress:
            observed = self._record.model_copy(update={"seen_indexes": "0"})
            taken = await reporter.offer(observed)
            type(self).outcomes.append("observed" if taken else "refused")
            return observed

    class _AllWritesFailOnce(FakeKube):
        failed = False

        async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
            if status.get("seenIndexes") and not self.failed:
                self.failed = True
                raise RuntimeError("HTTP 503")
            await super().patch_status(namespace, name, status)

    monkeypatch.setattr(run_module, "Engine", _ObservingEngine)
    kube = _AllWritesFailOnce(simulator)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    await asyncio.wait_for(
        reconciler(kube, events, spec(("Deployment", "dep-run1", "STOPPED"))).run(asyncio.Event()),
        10,
    )
    assert _ObservingEngine.outcomes == ["observed"]
    assert kube.failed and kube.status["seenIndexes"] == "0"
