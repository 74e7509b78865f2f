"""Restarts: a run killed at any point continues from its saved record and fresh observations."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.engine import Engine, Progress
from bulkterm.engine.decisions import Action
from tests.engine.fake_api import FakeAiApi, FakeClock, refusal
from tests.engine.support import DELETED, STOPPED, D, E, Run, check_counters, spec_of, wait_until


def resent_to_moving(api: FakeAiApi) -> list[str]:
    """Writes that repeated an action the API had already accepted for that item."""
    return [
        f"{w.action} {w.id}"
        for w in api.sent
        if (w.action is TargetStatus.STOPPED and w.stop_accepted_at is not None)
        or (w.action is TargetStatus.DELETED and w.delete_accepted_at is not None)
    ]


def saved(record: Progress) -> Progress:
    """What a restarted process gets back: the JSON that was written, parsed again."""
    return Progress.model_validate(record.to_status())


async def run_until_first_send_then_cancel(
    spec_targets: list[tuple[Kind, str, TargetStatus]],
    api: FakeAiApi,
    clock: FakeClock,
    until: Callable[[Run], bool] | None = None,
) -> Run:
    """Killed in its first sleep after ``until`` (default: after its first send)."""
    parked = asyncio.Event()
    run: Run

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if until(run) if until is not None else api.sent:
            parked.set()
            await asyncio.Event().wait()  # never returns: the process "hangs" until killed

    engine = Engine(spec_of(*spec_targets), api, clock=clock.now, sleep=sleep, rng=random.Random(0))
    run = Run(engine)
    task = asyncio.create_task(run())
    await asyncio.wait_for(parked.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return run


async def test_resumed_run_does_not_resend_actions_already_accepted(clock: FakeClock):
    # A stop takes 20 s to show, and targetStatus is hidden ($select=status): after the
    # restart the items look exactly like never-touched RUNNING ones.
    api = FakeAiApi(clock, stop_lag_seconds=20, report_target_status=False)
    targets: list[tuple[Kind, str, TargetStatus]] = []
    for n in range(30):
        api.add(D, f"dep-{n:04d}", Status.RUNNING)
        targets.append((D, f"dep-{n:04d}", STOPPED))
    for n in range(10):
        api.add(E, f"exe-{n:04d}", Status.STOPPED)
        targets.append((E, f"exe-{n:04d}", DELETED))
    first = await run_until_first_send_then_cancel(targets, api, clock)
    record = saved(first.snapshots[-1])
    assert record.active == 40

    clock.advance(5)  # the new process starts a little later
    resumed = Run(Engine(spec_of(*targets), api, record, clock=clock.now, sleep=clock.sleep))
    final = await resumed()
    # The executions were gone by the restart. The answers to the sends had not been written
    # (they ride with the next write, and the kill came first), so whether their DELETE went
    # out is unknown: "Removed" (seen, then gone) is what is known.
    assert {g.accepted for g in record.in_flight_groups or ()} == {None}
    assert final.outcomes == {"Removed": 10, "Stopped": 30}
    assert resent_to_moving(api) == []
    assert len(api.sent) == 40
    assert api.violations == []


async def test_an_accepted_delete_written_before_a_restart_is_deleted_after_it(
    clock: FakeClock,
):
    """The answer rides with the next write (here: the stop finishing); after the restart the
    gone execution is ``Deleted`` by this run, not someone else's ``Removed``."""
    api = FakeAiApi(clock, stop_seconds=5, delete_seconds=60)
    api.add(D, "dep-0001", Status.RUNNING)
    api.add(E, "exe-0001", Status.STOPPED)
    targets = [(D, "dep-0001", STOPPED), (E, "exe-0001", DELETED)]

    def delete_accepted_on_record(run: Run) -> bool:
        groups = run.snapshots[-1].in_flight_groups or [] if run.snapshots else []
        return any(g.accepted and g.action is Action.DELETE for g in groups)

    first = await run_until_first_send_then_cancel(targets, api, clock, delete_accepted_on_record)
    record = saved(first.snapshots[-1])
    assert record.succeeded == 1  # the stop, whose write carried the DELETE's answer
    clock.advance(60)  # the deletion completes while no operator runs

    resumed = Run(Engine(spec_of(*targets), api, record, clock=clock.now, sleep=clock.sleep))
    final = await resumed()
    assert final.outcomes == {"Stopped": 1, "Deleted": 1}
    assert len(api.sent) == 2


async def test_resumed_run_does_not_redo_finished_targets(clock: FakeClock):
    api = FakeAiApi(clock, stop_seconds=50)
    api.add(D, "dep-done", Status.STOPPED)
    api.add(D, "dep-slow", Status.RUNNING)
    targets = [(D, "dep-done", STOPPED), (D, "dep-slow", STOPPED)]
    first = await run_until_first_send_then_cancel(targets, api, clock)
    record = saved(first.snapshots[-1])
    assert record.completed_indexes == "0"
    del api.items[(D, "dep-done")]  # were it looked at again, it would now fail NotFound

    final = await Run(Engine(spec_of(*targets), api, record, clock=clock.now, sleep=clock.sleep))()
    assert (final.succeeded, final.failed) == (2, 0)
    assert final.outcomes == {"AlreadyStopped": 1, "Stopped": 1}


class HangingBulk(FakeAiApi):
    """Every bulk PATCH hangs for ever (its answer never comes)."""

    entered: asyncio.Event

    async def bulk_patch(self, kind, items):  # type: ignore[no-untyped-def]
        self.entered.set()
        await asyncio.Event().wait()


async def killed_mid_request(
    spec_targets: list[tuple[Kind, str, TargetStatus]], api: HangingBulk, clock: FakeClock
) -> Progress:
    """The record of a run cancelled while its first bulk PATCH hangs."""
    api.entered = asyncio.Event()
    engine = Engine(spec_of(*spec_targets), api, clock=clock.now, sleep=clock.sleep)
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(api.entered.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return engine.progress


async def test_record_read_after_cancelling_mid_request_counts_the_request_as_in_flight(
    clock: FakeClock,
):
    api = HangingBulk(clock)
    api.add(D, "dep-0001", Status.RUNNING)
    record = await killed_mid_request([(D, "dep-0001", STOPPED)], api, clock)
    check_counters(record, None)
    assert record.active == 1
    assert record.in_flight_groups is not None
    assert record.in_flight_groups[0].indexes == "0"


async def test_a_delete_recorded_but_unanswered_whose_item_is_gone_after_a_restart_is_removed(
    clock: FakeClock,
):
    """The record was written before the send and the answer never came: whether this run's
    DELETE went out is unknown, so the gone item is ``Removed`` (seen, then gone), never
    claimed as ``Deleted``."""
    api = HangingBulk(clock)
    api.add(E, "exe-0001", Status.STOPPED)
    targets = [(E, "exe-0001", DELETED)]
    record = saved(await killed_mid_request(targets, api, clock))
    assert [g.accepted for g in record.in_flight_groups or ()] == [None]
    del api.items[(E, "exe-0001")]  # gone by the restart: by our DELETE or someone else's

    resumed = FakeAiApi(clock)
    resumed.items = api.items
    engine = Engine(spec_of(*targets), resumed, record, clock=clock.now, sleep=clock.sleep)
    final = await Run(engine)()
    assert final.outcomes == {"Removed": 1}


async def test_cancellation_during_a_sleep_propagates_at_once(clock: FakeClock):
    api = FakeAiApi(clock, stop_seconds=1_000)
    api.add(D, "dep-0001", Status.RUNNING)
    slept = asyncio.Event()

    async def real_sleep(seconds: float) -> None:
        slept.set()
        await asyncio.sleep(3600)

    engine = Engine(spec_of((D, "dep-0001", STOPPED)), api, clock=clock.now, sleep=real_sleep)
    task = asyncio.create_task(engine.run())
    await asyncio.wait_for(slept.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=1)


async def test_a_finished_record_is_returned_unchanged_without_calling_the_api(
    api: FakeAiApi, clock: FakeClock
):
    api.add(D, "dep-0001", Status.RUNNING)
    spec = spec_of((D, "dep-0001", STOPPED))
    done = await Run(Engine(spec, api, clock=clock.now, sleep=clock.sleep))()
    calls = sum(api.calls.values())
    again = await Engine(spec, api, saved(done), clock=clock.now, sleep=clock.sleep).run()
    assert sum(api.calls.values()) == calls
    assert again.to_status() == done.to_status()


async def test_resume_keeps_the_retry_budget_already_spent(clock: FakeClock):
    api = FakeAiApi(clock)
    api.add(D, "dep-0001", Status.RUNNING)
    api.refuse["dep-0001"] = [refusal("0103", "busy")] * 10
    spec = spec_of((D, "dep-0001", STOPPED), backoff_limit_per_target=2)
    first = Run(Engine(spec, api, clock=clock.now, sleep=clock.sleep))
    task = asyncio.create_task(first())

    def retries_recorded() -> int:
        groups = first.snapshots[-1].attempt_groups if first.snapshots else None
        return groups[0].retries if groups else 0

    await wait_until(lambda: retries_recorded() >= 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = saved(first.snapshots[-1])
    assert record.attempt_groups is not None and record.attempt_groups[0].retries == 2

    final = await Engine(spec, api, record, clock=clock.now, sleep=clock.sleep).run()
    assert len(api.sent) == 3  # one more attempt, not a fresh budget of three
    assert final.failures[0].reason == "RetriesExhausted"


async def test_unknown_grace_period_survives_a_restart(clock: FakeClock):
    api = FakeAiApi(clock)
    api.add(D, "dep-unkn", Status.UNKNOWN)
    spec = spec_of((D, "dep-unkn", STOPPED), unknown_grace_period_seconds=100)
    first = Run(Engine(spec, api, clock=clock.now, sleep=clock.sleep))
    task = asyncio.create_task(first())
    await wait_until(lambda: sum(clock.slept) >= 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    record = saved(first.engine.progress)
    start = clock.now()
    final = await Engine(spec, api, record, clock=clock.now, sleep=clock.sleep).run()
    assert final.failures[0].reason == "CannotStopUnknown"
    assert (clock.now() - start).total_seconds() <= 41
