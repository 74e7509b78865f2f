"""Helpers shared by the engine tests: terse target lists, a run harness that checks counters."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from bulkterm.aiapi.models import Kind, TargetStatus
from bulkterm.engine import Engine, EngineSettings, Progress
from bulkterm.spec import BulkTerminationSpec, Target
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.hosts import CallbackHost

D, E = Kind.DEPLOYMENT, Kind.EXECUTION
STOPPED, DELETED = TargetStatus.STOPPED, TargetStatus.DELETED


def spec_of(*targets: tuple[Kind, str, TargetStatus], **kw: object) -> BulkTerminationSpec:
    return BulkTerminationSpec.model_validate(
        {
            "targets": [Target(kind=k, id=i, target_status=t) for k, i, t in targets],
            **kw,
        }
    )


def check_counters(p: Progress, previous: Progress | None) -> None:
    """The record's arithmetic: the sum holds and finished work never un-finishes."""
    assert p.total == p.pending + p.active + p.succeeded + p.failed
    assert p.progress == f"{p.succeeded + p.failed}/{p.total}"
    if previous is not None:
        assert p.succeeded >= previous.succeeded
        assert p.failed >= previous.failed


@dataclass
class Run:
    engine: Engine
    snapshots: list[Progress] = field(default_factory=list)

    async def on_progress(self, p: Progress) -> None:
        check_counters(p, self.snapshots[-1] if self.snapshots else None)
        self.snapshots.append(p)

    async def __call__(self) -> Progress:
        final = await self.engine.run(CallbackHost(self.on_progress))
        check_counters(final, self.snapshots[-1] if self.snapshots else None)
        return final


def make_run(
    spec: BulkTerminationSpec,
    api: FakeAiApi,
    clock: FakeClock,
    record: Progress | None = None,
    settings: EngineSettings | None = None,
) -> Run:
    engine = Engine(
        spec,
        api,
        record,
        settings=settings,
        clock=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
    )
    return Run(engine)


async def run_to_end(
    spec: BulkTerminationSpec,
    api: FakeAiApi,
    clock: FakeClock,
    record: Progress | None = None,
    settings: EngineSettings | None = None,
) -> Progress:
    return await make_run(spec, api, clock, record, settings)()


def reasons(p: Progress) -> dict[str, str]:
    """Failure reason by target id (the capped list is complete in these small tests)."""
    return {f.id: f.reason for f in p.failures}


async def wait_until(predicate: Callable[[], bool], *, turns: int = 100_000) -> None:
    """Let other tasks run until ``predicate`` holds (bounded, so a bug fails instead of hanging)."""
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("the awaited condition never became true")
