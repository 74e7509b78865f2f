"""The engine, the real HTTP client and the simulator together: whole runs, judged by the API.

The simulator runs on a :class:`SimClock` that the engine's ``sleep`` moves forward, so a
run of several simulated minutes (UNKNOWN → PENDING after 2 s, stops taking 3.5 s,
deletions 8 s, ``$select=status`` hiding ``targetStatus``) takes a second or two of real
time and is the same every time. The simulator is the judge: it records every request the
real AI API would refuse, and a watching proxy notes what each item looked like inside the
simulator at the moment a write for it was sent.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from bulkterm.aiapi.base import ForwardingApi
from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.models import (
    BulkItemResult,
    Kind,
    Status,
    TargetStatus,
)
from bulkterm.engine import Engine, EngineSettings, Progress, expand
from bulkterm.simulator import ItemView, SimClock, Simulator, Timings
from bulkterm.spec import BulkTerminationSpec
from tests.engine.support import DELETED, STOPPED, D, E, Run, spec_of

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
MakeSimulator = Callable[..., Awaitable[Simulator]]

STATUSES = {
    D: [
        Status.UNKNOWN,
        Status.PENDING,
        Status.RUNNING,
        Status.STOPPING,
        Status.STOPPED,
        Status.DEAD,
    ],
    E: [
        Status.UNKNOWN,
        Status.PENDING,
        Status.RUNNING,
        Status.STOPPING,
        Status.STOPPED,
        Status.DEAD,
        Status.COMPLETED,
    ],
}


@dataclass(frozen=True)
class Case:
    """One target and what the AI API must look like for it once the run is over."""

    kind: Kind
    id: str
    goal: TargetStatus
    #: ``None``: the id does not exist. ``held``: stuck UNKNOWN (never resolves by itself).
    status: Status | None
    held: bool = False

    @property
    def final_status(self) -> Status | None:
        if self.goal is DELETED or self.status is None:
            return None
        if self.held:
            return Status.UNKNOWN
        if self.status in (Status.DEAD, Status.COMPLETED):
            return self.status
        return Status.STOPPED

    @property
    def failure(self) -> str | None:
        if self.goal is STOPPED and self.status is None:
            return "NotFound"
        if self.goal is STOPPED and self.held:
            return "CannotStopUnknown"
        return None


def mixed_cases(n: int) -> list[Case]:
    """``n`` targets cycling through every kind, status and goal, plus missing and stuck items."""
    shapes: list[tuple[Kind, Status | None, bool]] = []
    for kind, statuses in STATUSES.items():
        shapes += [(kind, s, False) for s in statuses]
        shapes += [(kind, None, False), (kind, Status.UNKNOWN, True)]
    cases = []
    for i in range(n):
        kind, status, held = shapes[i % len(shapes)]
        goal = STOPPED if (i // len(shapes)) % 2 == 0 else DELETED
        cases.append(Case(kind, f"{kind.value[:3].lower()}-{i:04d}", goal, status, held))
    return cases


def seed(sim: Simulator, cases: Sequence[Case]) -> None:
    for c in cases:
        if c.status is None:
            continue
        target = "STOPPED" if c.status is Status.STOPPING else None
        sim.add_item(c.kind, c.id, c.status, target_status=target, hold=c.held)
    for n in range(30):  # neighbours the spec does not name: they must stay untouched
        sim.add_item(D if n % 2 else E, f"other-{n:04d}", Status.RUNNING)


@dataclass(frozen=True)
class Write:
    kind: Kind
    id: str
    action: TargetStatus
    #: The item inside the simulator when the write was sent (``None``: it did not exist).
    seen: ItemView | None
    #: The API answered and accepted it (a request cut off by the kill has no answer).
    accepted: bool


class Watched(ForwardingApi):
    """An ``AiApi`` in front of the real client that notes every write with the item's state."""

    def __init__(self, api: AiApiClient, sim: Simulator) -> None:
        super().__init__(api)
        self.api = api
        self.sim = sim
        self.writes: list[Write] = []
        self.after_bulk: Callable[[], None] | None = None

    def _seen(self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]) -> list[Write]:
        return [Write(kind, i, a, self.sim.item(kind, i), accepted=False) for i, a in items]

    async def bulk_patch(
        self, kind: Kind, items: Sequence[tuple[str, TargetStatus]]
    ) -> list[BulkItemResult]:
        seen = self._seen(kind, items)
        answer = await self.api.bulk_patch(kind, items)
        ok = {r.id for r in answer if r.accepted}
        self.writes += [replace(w, accepted=w.id in ok) for w in seen]
        if self.after_bulk is not None:
            self.after_bulk()
        return answer

    async def stop(self, kind: Kind, item_id: str) -> None:
        seen = self._seen(kind, [(item_id, TargetStatus.STOPPED)])
        await self.api.stop(kind, item_id)
        self.writes += [replace(w, accepted=True) for w in seen]

    async def delete(self, kind: Kind, item_id: str) -> None:
        seen = self._seen(kind, [(item_id, TargetStatus.DELETED)])
        await self.api.delete(kind, item_id)
        self.writes += [replace(w, accepted=True) for w in seen]


def writes_to_moving_items(writes: Sequence[Write]) -> list[str]:
    """Writes that repeated what the item was already doing: the thing a resume must not do."""
    return [
        f"{w.action} {w.kind} {w.id} while {w.seen.status} targetStatus={w.seen.target_status}"
        for w in writes
        if w.seen is not None
        and (
            w.seen.deleting
            or (w.action is TargetStatus.STOPPED and w.seen.target_status == "STOPPED")
        )
    ]


def engine_for(
    spec: BulkTerminationSpec,
    api: Watched,
    clock: SimClock,
    record: Progress | None = None,
    settings: EngineSettings | None = None,
) -> Engine:
    async def sleep(seconds: float) -> None:
        clock.advance(seconds)
        await asyncio.sleep(0)

    return Engine(
        spec,
        api,
        record,
        clock=lambda: EPOCH + timedelta(seconds=clock()),
        sleep=sleep,
        rng=random.Random(0),
        settings=settings,
    )


def spec_for(cases: Sequence[Case]) -> BulkTerminationSpec:
    return spec_of(
        *[(c.kind, c.id, c.goal) for c in cases],
        unknown_grace_period_seconds=10,
        active_deadline_seconds=900,
    )


def assert_outcome(sim: Simulator, cases: Sequence[Case], final: Progress) -> None:
    wrong = [
        f"{c.kind} {c.id}: {sim.state_of(c.kind, c.id)}, expected {c.final_status}"
        for c in cases
        if sim.state_of(c.kind, c.id) != c.final_status
    ]
    assert wrong == []
    expected_failures = {c.id: c.failure for c in cases if c.failure}
    assert {f.id: f.reason for f in final.failures} == expected_failures
    assert final.failed == len(expected_failures)
    assert final.succeeded == len(cases) - len(expected_failures)
    untouched = [v.id for v in sim.items() if v.id.startswith("other-")]
    assert len(untouched) == 30
    assert all(v.status is Status.RUNNING for v in sim.items() if v.id.startswith("other-"))


@pytest.fixture
def sim_clock() -> SimClock:
    return SimClock()


async def run_mixed(
    make_simulator: MakeSimulator, clock: SimClock, *, bulk_updates: bool
) -> tuple[Simulator, Watched, list[Case], Progress]:
    sim = await make_simulator(clock=clock, timings=Timings(), bulk_updates=bulk_updates)
    cases = mixed_cases(250)
    seed(sim, cases)
    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        final = await asyncio.wait_for(Run(engine_for(spec_for(cases), api, clock))(), 60)
    return sim, api, cases, final


async def test_a_mixed_run_of_250_targets_ends_with_exactly_the_right_items_stopped_or_deleted(
    simulator_factory: MakeSimulator, sim_clock: SimClock
):
    sim, api, cases, final = await run_mixed(simulator_factory, sim_clock, bulk_updates=True)
    assert_outcome(sim, cases, final)
    assert sim.violations == []
    assert writes_to_moving_items(api.writes) == []
    assert sim.counters["PATCH /lm/deployments"] >= 2
    failed = final.condition("Failed")
    assert failed is not None and failed.reason == "FailedTargets"


async def test_the_same_run_with_bulk_updates_off_uses_single_calls_and_ends_the_same(
    simulator_factory: MakeSimulator, sim_clock: SimClock
):
    sim, api, cases, final = await run_mixed(simulator_factory, sim_clock, bulk_updates=False)
    assert_outcome(sim, cases, final)
    assert sim.violations == []
    assert writes_to_moving_items(api.writes) == []
    assert sim.counters["PATCH /lm/deployments"] == 0
    assert sim.counters["PATCH /lm/executions"] == 0
    assert final.capabilities is not None
    assert final.capabilities.bulk_updates.deployments is False


async def test_a_run_killed_mid_way_resumes_from_its_record_without_resending_to_moving_items(
    simulator_factory: MakeSimulator, sim_clock: SimClock
):
    # Stops show only after 5 s: right after the kill every stopped item still reads RUNNING,
    # and $select=status hides its targetStatus, so only the record knows it was stopped.
    # Executions run for ever here, so none completes while a cut-off request is awaited.
    timings = Timings(stop_delay_seconds=5.0, execution_run_seconds=None)
    sim = await simulator_factory(clock=sim_clock, timings=timings, bulk_updates=True)
    cases = mixed_cases(250)
    seed(sim, cases)
    spec = spec_for(cases)

    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api = Watched(client, sim)
        first = Run(engine_for(spec, api, sim_clock))
        task = asyncio.create_task(first())
        api.after_bulk = task.cancel  # killed as soon as the first bulk PATCH was answered
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 60)
    killed_after = len(api.writes)
    assert 0 < killed_after < len(cases)

    saved = Progress.model_validate(first.snapshots[-1].to_status())
    assert saved.active > 0 and not saved.terminal
    sim_clock.advance(2)  # the replacement process starts a moment later
    looks_untouched = [
        v for v in sim.items() if v.target_status == "STOPPED" and v.status is Status.RUNNING
    ]
    assert looks_untouched, "the scenario needs stopped items that still read RUNNING"

    async with AiApiClient.from_service_key(sim.service_key(), "default") as client:
        api2 = Watched(client, sim)
        final = await asyncio.wait_for(Run(engine_for(spec, api2, sim_clock, saved))(), 60)

    assert_outcome(sim, cases, final)
    assert sim.violations == []
    assert writes_to_moving_items(api2.writes) == []
    accepted_before = {(w.kind, w.id, w.action) for w in api.writes if w.accepted}
    assert accepted_before
    resent = [w for w in api2.writes if (w.kind, w.id, w.action) in accepted_before]
    assert resent == []
    accepted = [w for w in [*api.writes, *api2.writes] if w.accepted]
    assert max(Counter((w.kind, w.id, w.action) for w in accepted).values()) == 1
    assert set(expand(final.completed_indexes)) >= set(expand(saved.completed_indexes))
