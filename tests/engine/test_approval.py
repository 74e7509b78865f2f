"""``spec.requireApproval``: the run writes its plan and the plan's digest, sends nothing until
the approval quotes that digest, and an approval of a plan that no longer stands (a target
moved) does not count; once approved, it never asks again."""

from __future__ import annotations

import random
from collections.abc import Callable

from bulkterm.aiapi.models import Status
from bulkterm.engine import Progress
from bulkterm.engine.run import Run
from tests.engine.fake_api import FakeAiApi, FakeClock
from tests.engine.support import DELETED, STOPPED, D, spec_of
from tests.hosts import CallbackHost


class Approver:
    """The annotation as the operator reads it live; set by the test's ``act`` on a sleep."""

    def __init__(self, clock: FakeClock, act: Callable[[Approver, int], None]) -> None:
        self.value: str | None = None
        self.records: list[Progress] = []
        self._clock = clock
        self._act = act
        self.sleeps = 0

    def __call__(self) -> str | None:
        return self.value

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self._act(self, self.sleeps)
        await self._clock.sleep(seconds)

    def digest(self) -> str:
        plan = self.records[-1].plan
        assert plan is not None and plan.digest.startswith("sha256:")
        return plan.digest


async def run(api: FakeAiApi, approver: Approver, clock: FakeClock, *targets, **spec) -> Progress:  # type: ignore[no-untyped-def]
    async def keep(p: Progress) -> None:
        approver.records.append(p)

    the_run = Run(
        spec_of(*targets, require_approval=True, **spec),
        CallbackHost(keep),
        clock=clock.now,
        sleep=approver.sleep,
        rng=random.Random(0),
        approval=approver,
    )
    return await the_run.drive(api)


async def test_nothing_is_sent_until_the_plan_s_digest_is_approved(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-0001", Status.RUNNING)
    api.add(D, "dep-0002", Status.STOPPED)
    sent_before: list[int] = []

    def approve_on_the_fourth_look(approver: Approver, sleeps: int) -> None:
        if sleeps == 4:
            sent_before.append(len(api.sent))
            approver.value = approver.digest()

    approver = Approver(clock, approve_on_the_fourth_look)
    final = await run(api, approver, clock, (D, "dep-0001", STOPPED), (D, "dep-0002", DELETED))
    assert sent_before == [0]
    waiting = approver.records[0]
    ready = waiting.condition("Ready")
    assert ready is not None and ready.reason == "AwaitingApproval"
    assert "not approved yet" in ready.message and waiting.plan is not None
    assert (waiting.plan.stop, waiting.plan.delete) == (1, 1)
    assert final.condition("Complete") is not None
    assert final.approved_plan == waiting.plan.digest
    assert api.status_of(D, "dep-0001") is Status.STOPPED and api.status_of(D, "dep-0002") is None


async def test_an_approval_of_a_plan_that_no_longer_stands_does_not_count(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-0001", Status.RUNNING)
    stale: list[str] = []

    def approve_then_the_world_moves(approver: Approver, sleeps: int) -> None:
        if sleeps == 2:
            stale.append(approver.digest())
            api.schedule(D, "dep-0001", 0, Status.STOPPED)  # stopped by someone else
            approver.value = stale[0]
        if sleeps == 5:
            approver.value = approver.digest()  # the new plan, approved

    approver = Approver(clock, approve_then_the_world_moves)
    final = await run(api, approver, clock, (D, "dep-0001", DELETED))
    after_move = [r for r in approver.records if r.plan is not None and r.plan.digest != stale[0]]
    assert after_move, "the plan changed with the world"
    message = after_move[0].condition("Ready").message  # type: ignore[union-attr]
    assert f"the approval quotes {stale[0]}, a plan that no longer stands" in message
    assert final.condition("Complete") is not None
    assert final.approved_plan != stale[0]
    assert [w.action.value for w in api.sent] == ["DELETED"]  # no STOP: the new plan's


async def test_a_run_approved_before_a_restart_does_not_ask_again(
    api: FakeAiApi, clock: FakeClock
) -> None:
    api.add(D, "dep-0001", Status.RUNNING)

    def never(approver: Approver, sleeps: int) -> None:
        raise AssertionError("asked again")

    record = Progress(total=1, pending=1, progress="0/1", approved_plan="sha256:before")
    approver = Approver(clock, never)
    the_run = Run(
        spec_of((D, "dep-0001", STOPPED), require_approval=True, poll_interval_seconds=1),
        CallbackHost(lambda p: _noop()),
        record,
        clock=clock.now,
        sleep=clock.sleep,
        rng=random.Random(0),
        approval=approver,
    )
    final = await the_run.drive(api)
    assert final.condition("Complete") is not None


async def _noop() -> None:
    return None


def test_the_same_plan_has_the_same_digest_and_another_plan_another() -> None:
    from bulkterm.engine.planning import plan_digest
    from bulkterm.engine.progress import Plan
    from bulkterm.spec import Target

    targets = [Target(kind=D, id="dep-0001", target_status=STOPPED)]
    one = Plan(stop=1, stop_indexes="0", reasons={"Stop": 1})
    assert plan_digest(targets, one) == plan_digest(targets, one.model_copy())
    waits = Plan(wait=1, wait_indexes="0", reasons={"Stopping": 1})
    assert plan_digest(targets, one) != plan_digest(targets, waits)
    more = [*targets, Target(kind=D, id="dep-0002", target_status=STOPPED)]
    assert plan_digest(targets, one) != plan_digest(more, one)
