"""Record before send: a record announcing sends must be on the API server before the sends.

The status written before a send is what a restarted operator reads to know what was sent. If
that write fails, the progress callback raises :class:`RecordNotWritten` and nothing is sent;
the record is offered again later (by the engine after a back-off, or by a fresh engine run).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.engine import InFlightGroup, Progress
from bulkterm.engine.decisions import Action
from bulkterm.engine.errors import RecordNotWritten
from bulkterm.k8s import reconciler as reconciler_module
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
    before a bulk PATCH, up to five times while the callback raises RecordNotWritten."""

    outcomes: list[str]

    def __init__(self, spec: Any, api: Any, record: Progress | None, **_: Any) -> None:
        assert record is not None
        self._record = record
        type(self).outcomes = []

    @property
    def progress(self) -> Progress:
        return self._record

    async def run(self, on_progress: Any) -> Progress:
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
            try:
                await on_progress(sending)
            except RecordNotWritten as exc:
                type(self).outcomes.append(f"refused: {exc}")
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


async def test_the_callback_raises_record_not_written_when_the_forced_write_fails(
    simulator: Simulator, events: FakeEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciler_module, "Engine", _SendingEngine)
    kube = _FailingWrites(simulator, failures=2)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    body = spec(("Deployment", "dep-run1", "STOPPED"))
    await asyncio.wait_for(reconciler(kube, events, body).run(asyncio.Event()), 10)
    outcomes = _SendingEngine.outcomes
    assert [o.split(":")[0] for o in outcomes] == ["refused", "refused", "written"]
    assert "cleanup" in outcomes[0]  # names the resource, nothing secret
    assert kube.status["inFlightGroups"] == [
        {"action": "STOP", "sentAt": "2026-01-01T00:00:00Z", "indexes": "0"}
    ]


async def test_a_record_without_new_sends_is_throttled_and_never_raises(
    simulator: Simulator, events: FakeEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only records announcing sends are forced: a progress update whose write fails is held
    back and retried by the throttle, the engine is not interrupted."""

    class _ObservingEngine(_SendingEngine):
        async def run(self, on_progress: Any) -> Progress:
            observed = self._record.model_copy(update={"seen_indexes": "0"})
            await on_progress(observed)  # must not raise
            type(self).outcomes.append("observed")
            return observed

    class _AllWritesFailOnce(FakeKube):
        failed = False

        async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
            if status.get("seenIndexes") and not self.failed:
                self.failed = True
                raise RuntimeError("HTTP 503")
            await super().patch_status(namespace, name, status)

    monkeypatch.setattr(reconciler_module, "Engine", _ObservingEngine)
    kube = _AllWritesFailOnce(simulator)
    kube.put_secret("aicore", "serviceKey", simulator.service_key())
    await asyncio.wait_for(
        reconciler(kube, events, spec(("Deployment", "dep-run1", "STOPPED"))).run(asyncio.Event()),
        10,
    )
    assert _ObservingEngine.outcomes == ["observed"]
    assert kube.failed and kube.status["seenIndexes"] == "0"
