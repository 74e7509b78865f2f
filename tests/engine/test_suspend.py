"""``spec.suspend`` in the engine (a Job's ``suspend``): while it holds nothing new is sent,
what was sent is still watched, and the deadline does not run out; once it is lifted the run
goes on from where it was."""

from __future__ import annotations

import random
from collections.abc import Callable

from bulkterm.aiapi.models import Status, TargetStatus
from bulkterm.engine import Engine
from bulkterm.engine.progress import Phase, Progress, Situation, build_conditions
from tests.engine.fake_api import START, FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, Run, spec_of


class Switch:
    """``spec.suspend`` as the operator reads it live; flipped after a number of sleeps."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        on: bool,
        flips: tuple[int, ...] = (),
        on_sleep: Callable[[Switch], None] | None = None,
    ) -> None:
        self.on = on
        self._clock = clock
        self._flips = flips
        self._on_sleep = on_sleep
        self.sleeps = 0

    def __call__(self) -> bool:
        return self.on

    async def sleep(self, seconds: float) -> None:
        if self._on_sleep is not None:
            self._on_sleep(self)
        self.sleeps += 1
        if self.sleeps in self._flips:
            self.on = not self.on
        await self._clock.sleep(seconds)


def engine(api: FakeAiApi, switch: Switch, clock: FakeClock, *targets, **spec) -> Run:  # type: ignore[no-untyped-def]
    return Run(
        Engine(
            spec_of(*targets, **spec),
            api,
            clock=clock.now,
            sleep=switch.sleep,
            rng=random.Random(0),
            suspended=switch,
        )
    )


def phases(snapshots: list[Progress]) -> list[str]:
    seen: list[str] = []
    for p in snapshots:
        ready = p.condition("Ready")
        if ready is not None and (not seen or seen[-1] != ready.reason):
            seen.append(ready.reason)
    return seen


async def test_a_run_created_suspended_sends_nothing_until_it_is_resumed(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-0001", Status.RUNNING)
    sent_while_suspended: list[int] = []

    def watch(switch: Switch) -> None:
        if switch.on:
            sent_while_suspended.append(len(api.sent))

    switch = Switch(clock, on=True, flips=(5,), on_sleep=watch)
    run = engine(api, switch, clock, (D, "dep-0001", STOPPED))
    final = await run()
    assert set(sent_while_suspended) == {0}
    assert api.status_of(D, "dep-0001") is Status.STOPPED
    assert phases(run.snapshots)[:2] == ["Suspended", "Running"]
    suspended = final.condition("Suspended")
    assert suspended is not None and (suspended.status, suspended.reason) == ("False", "Resumed")
    assert final.condition("Complete") is not None


async def test_while_suspended_the_status_says_so_and_is_not_reconciling(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-0001", Status.RUNNING)
    switch = Switch(clock, on=True, flips=(3,))
    run = engine(api, switch, clock, (D, "dep-0001", STOPPED))
    await run()
    held = next(p for p in run.snapshots if p.condition("Suspended") is not None)
    assert {c.type: c.status for c in held.conditions} == {
        "Reconciling": "False",
        "Stalled": "False",
        "Ready": "False",
        "Suspended": "True",
    }
    assert "set spec.suspend to false to resume" in held.condition("Suspended").message  # type: ignore[union-attr]


async def test_suspending_mid_run_stops_new_sends_but_watches_what_was_sent(
    api: FakeAiApi, clock: FakeClock
) -> None:
    """A RUNNING deployment bound for deletion: its stop goes out, then the run is suspended:
    the stop's effect is still observed, and the delete waits for the resume."""
    api.add(D, "dep-0001", Status.RUNNING)
    resumed_at: list[int] = []

    def watch(switch: Switch) -> None:
        if switch.sleeps == 5:  # the 6th sleep lifts the suspension
            resumed_at.append(len(api.sent))

    switch = Switch(clock, on=False, flips=(1, 6), on_sleep=watch)
    run = engine(api, switch, clock, (D, "dep-0001", DELETED))
    final = await run()
    actions = [w.action for w in api.sent]
    assert actions == [TargetStatus.STOPPED, TargetStatus.DELETED]
    assert resumed_at == [1]  # only the stop had gone out while suspended
    assert "Suspended" in phases(run.snapshots)
    assert final.outcomes == {"Deleted": 1}


async def test_the_deadline_does_not_run_out_while_suspended(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-0001", Status.RUNNING)
    switch = Switch(clock, on=True, flips=(20,))  # 20 polls of 10 s: past 60 s
    run = engine(api, switch, clock, (D, "dep-0001", STOPPED), active_deadline_seconds=60)
    final = await run()
    assert (clock.now() - START).total_seconds() > 60
    assert final.condition("Complete") is not None, final.failures
    assert final.condition("Failed") is None


def test_a_suspended_situation_is_suspended_true_and_nothing_else_true() -> None:
    conditions = build_conditions([], Situation(Phase.SUSPENDED, "Suspended", "held"), now=START)
    assert [(c.type, c.status) for c in conditions] == [
        ("Reconciling", "False"),
        ("Stalled", "False"),
        ("Ready", "False"),
        ("Suspended", "True"),
    ]


def test_a_run_never_suspended_has_no_suspended_condition() -> None:
    conditions = build_conditions([], Situation(Phase.RUNNING, "Running", "go"), now=START)
    assert "Suspended" not in {c.type for c in conditions}
