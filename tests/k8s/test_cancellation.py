"""Cancelling ``Reconciler.run`` (kopf's hard stop after the graceful period) ends the engine
with it: no task left running, sending or failing unobserved ("Task exception was never
retrieved")."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from bulkterm.engine import Progress
from bulkterm.engine import run as run_module
from bulkterm.simulator import Simulator
from tests.k8s.support import (
    FakeEvents,
    FakeKube,
    ai_api_sends,
    reconciler,
    running_for_deletion,
    spec,
)

# These runs are about bulk PATCH rounds: the simulator's bulkUpdates is on explicitly.
pytestmark = pytest.mark.simulator(bulk_updates=True)


class LoopErrors:
    """Everything that reaches the loop's exception handler while installed."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._loop = asyncio.get_running_loop()
        self._previous = self._loop.get_exception_handler()
        self._loop.set_exception_handler(lambda _, ctx: self.seen.append(str(ctx.get("message"))))

    async def settle(self) -> list[str]:
        """Let finished tasks be collected, then report what the loop was told."""
        for _ in range(3):
            await asyncio.sleep(0.05)
            gc.collect()
        self._loop.set_exception_handler(self._previous)
        return self.seen


def engine_tasks() -> list[asyncio.Task[Any]]:
    """The tasks that drive a run (the engine's loop runs in them)."""
    return [
        t
        for t in asyncio.all_tasks()
        if not t.done()
        and t is not asyncio.current_task()
        and t.get_coro().__qualname__ in ("Run.drive", "Engine.run")
    ]


async def cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_cancelling_mid_run_stops_the_engine_and_its_sends(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    errors = LoopErrors()
    targets = running_for_deletion(simulator, 20, stopping=1.0, deletion=0.5)
    task = asyncio.create_task(reconciler(kube, events, spec(*targets)).run(asyncio.Event()))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if simulator.counters["PATCH /lm/deployments"] >= 1:
            break
    await cancel(task)
    assert engine_tasks() == []
    calls = sum(simulator.counters.values())
    sends = ai_api_sends(simulator)
    await asyncio.sleep(1.5)  # the STOPs complete: an orphaned engine would send the DELETEs
    assert ai_api_sends(simulator) == sends
    assert sum(simulator.counters.values()) == calls
    assert await errors.settle() == []


class _LateFailingEngine:
    """An engine that fails some time later: when released, or while being cancelled."""

    release: asyncio.Event
    fail_on_cancel = False

    def __init__(self, spec: Any, api: Any, record: Progress | None, **_: Any) -> None:
        self._record = record or Progress()

    @property
    def progress(self) -> Progress:
        return self._record

    async def run(self, reporter: Any) -> Progress:
        try:
            await type(self).release.wait()
        except asyncio.CancelledError:
            if type(self).fail_on_cancel:
                raise RuntimeError("engine failed while cancelled") from None
            raise
        raise RuntimeError("engine failed late")


@pytest.mark.parametrize("fail_on_cancel", [False, True])
async def test_no_engine_task_is_left_behind_to_fail_unobserved(
    simulator: Simulator,
    kube: FakeKube,
    events: FakeEvents,
    monkeypatch: pytest.MonkeyPatch,
    fail_on_cancel: bool,
) -> None:
    errors = LoopErrors()
    _LateFailingEngine.release = asyncio.Event()
    _LateFailingEngine.fail_on_cancel = fail_on_cancel
    monkeypatch.setattr(run_module, "Engine", _LateFailingEngine)
    rec = reconciler(kube, events, spec(("Deployment", "dep-run1", "STOPPED")))
    task = asyncio.create_task(rec.run(asyncio.Event()))
    await asyncio.sleep(0.3)  # first visit written, engine waiting
    await cancel(task)
    _LateFailingEngine.release.set()
    del task, rec
    assert await errors.settle() == []
    assert engine_tasks() == []


async def test_cancelling_while_stalled_leaves_no_task_behind(
    simulator: Simulator, kube: FakeKube, events: FakeEvents
) -> None:
    errors = LoopErrors()
    before = asyncio.all_tasks()
    rec = reconciler(kube, events, spec(("Deployment", "dep-run1", "STOPPED"), secret="later"))
    task = asyncio.create_task(rec.run(asyncio.Event()))
    await asyncio.sleep(0.3)
    await cancel(task)
    assert asyncio.all_tasks() - before - {asyncio.current_task()} == set()
    assert await errors.settle() == []
