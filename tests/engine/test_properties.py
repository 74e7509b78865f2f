"""The rules that must never break, over random targets, worlds, faults and restarts.

Each example builds a random AI API (statuses, missing ids, items outside the spec,
spontaneous transitions, slow or hidden stops, refusals, lost actions, transient errors,
bulk on or off) and a random spec, runs the engine to the end (maybe killing and resuming
it once from its saved record), and checks every write the API received.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulkterm.aiapi.errors import TransientError
from bulkterm.aiapi.models import BulkUpdates, Kind, Status, TargetStatus
from bulkterm.engine import Engine, Progress, expand
from tests.engine.fake_api import FakeAiApi, FakeClock, refusal
from tests.engine.support import Run, check_counters, spec_of

STARTING = [Status.RUNNING, Status.PENDING, Status.UNKNOWN, Status.STOPPING]
SETTLED = [Status.STOPPED, Status.DEAD, Status.COMPLETED]


def possible(kind: Kind, statuses: list[Status | None]) -> list[Status | None]:
    """The statuses an item of ``kind`` can take: deployments never complete."""
    return [s for s in statuses if kind is Kind.EXECUTION or s is not Status.COMPLETED]


@dataclass
class World:
    targets: list[tuple[Kind, str, TargetStatus]]
    api: FakeAiApi
    clock: FakeClock
    spec_kw: dict[str, object]
    restart_after_sleeps: int | None


@st.composite
def worlds(draw: st.DrawFn) -> World:
    clock = FakeClock()
    api = FakeAiApi(
        clock,
        bulk_updates=BulkUpdates(deployments=draw(st.booleans()), executions=draw(st.booleans())),
        stop_lag_seconds=draw(st.sampled_from([0.0, 0.0, 3.0, 20.0])),
        stop_seconds=draw(st.floats(0.5, 30)),
        delete_seconds=draw(st.floats(0.5, 30)),
        report_target_status=draw(st.booleans()),
    )
    n = draw(st.integers(1, 40))
    targets: list[tuple[Kind, str, TargetStatus]] = []
    for i in range(n):
        kind = draw(st.sampled_from(list(Kind)))
        item_id = f"item-{i:03d}"
        goal = draw(st.sampled_from(list(TargetStatus)))
        targets.append((kind, item_id, goal))
        status = draw(st.one_of(st.none(), st.sampled_from(possible(kind, STARTING + SETTLED))))
        if status is None:
            continue  # a missing id
        if status is Status.STOPPING:
            api.add_stopping(kind, item_id, after=draw(st.floats(0, 60)))
            continue
        api.add(kind, item_id, status)
        if status in (Status.RUNNING, Status.PENDING, Status.UNKNOWN) and draw(st.booleans()):
            change = draw(
                st.sampled_from(
                    possible(
                        kind, [Status.RUNNING, Status.PENDING, Status.DEAD, Status.COMPLETED, None]
                    )
                )
            )
            api.schedule(kind, item_id, draw(st.floats(0, 90)), change)
        if draw(st.integers(0, 5)) == 0:
            api.refuse[item_id] = [refusal("0103", "busy")] * draw(st.integers(1, 4))
        if draw(st.integers(0, 15)) == 0:
            api.ineffective.add(item_id)
    for extra in range(draw(st.integers(0, 5))):  # items the spec does not name
        api.add(draw(st.sampled_from(list(Kind))), f"other-{extra:03d}", Status.RUNNING)
    for method in ("list", "get", "bulk_patch", "stop", "delete", "count", "meta"):
        if draw(st.integers(0, 4)) == 0:
            api.fail_next[method] = [
                TransientError("HTTP 503", retry_after=draw(st.sampled_from([None, 1.0, 7.0])))
                for _ in range(draw(st.integers(1, 3)))
            ]
    spec_kw: dict[str, object] = {
        "batch_size": draw(st.integers(1, 100)),
        "backoff_limit_per_target": draw(st.integers(0, 3)),
        "unknown_grace_period_seconds": draw(st.integers(0, 60)),
        # always a deadline: a world may hold an item that never settles
        "active_deadline_seconds": draw(st.sampled_from([120, 1800])),
        "poll_interval_seconds": draw(st.integers(1, 30)),
    }
    restart = draw(st.one_of(st.none(), st.integers(1, 12)))
    return World(targets, api, clock, spec_kw, restart)


async def run_world(world: World) -> tuple[Progress, list[Progress]]:
    api, clock = world.api, world.clock
    spec = spec_of(*world.targets, **world.spec_kw)
    parked = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        if (
            world.restart_after_sleeps is not None
            and len(clock.slept) == world.restart_after_sleeps
        ):
            parked.set()
            await asyncio.Event().wait()

    first = Run(Engine(spec, api, clock=clock.now, sleep=sleep, rng=random.Random(0)))
    task = asyncio.create_task(first())
    waiter = asyncio.create_task(parked.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED, timeout=10)
    waiter.cancel()
    if not task.done() and not parked.is_set():
        task.cancel()
        raise AssertionError("the run neither finished nor reached its deadline")
    if task.done():
        return task.result(), first.snapshots
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    record = Progress.model_validate(first.snapshots[-1].to_status())
    clock.advance(1)
    second = Run(
        Engine(spec, api, record, clock=clock.now, sleep=clock.sleep, rng=random.Random(1))
    )
    final = await asyncio.wait_for(second(), timeout=10)
    snapshots = [*first.snapshots, *second.snapshots]
    return final, snapshots


PROPERTY = settings(max_examples=45, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(worlds())
def test_every_write_obeys_the_api_rules_and_stays_inside_the_spec(world: World) -> None:
    asyncio.run(run_world(world))
    api = world.api
    in_spec = {(k, i): goal for k, i, goal in world.targets}

    assert api.violations == [], "the API saw a forbidden request"
    per_request: dict[int, list[str]] = {}
    for w in api.sent:
        per_request.setdefault(w.request, []).append(w.id)
    batch_size = world.spec_kw["batch_size"]
    assert isinstance(batch_size, int)
    for request, ids in per_request.items():
        assert len(ids) <= min(100, batch_size), f"request {request} is too big"
        assert len(set(ids)) == len(ids), f"request {request} names an id twice"

    for w in api.sent:
        goal = in_spec.get((w.kind, w.id))
        assert goal is not None, f"wrote to {w.kind} {w.id}, which the spec does not name"
        assert w.action in (TargetStatus.STOPPED, TargetStatus.DELETED)
        assert w.status_before is not None, f"wrote to {w.id}, which was already gone"
        if goal is TargetStatus.STOPPED:
            assert w.action is TargetStatus.STOPPED, f"deleted {w.id}, whose target is STOPPED"
            assert w.status_before is not Status.STOPPED, f"stopped {w.id}, already STOPPED"
        if w.action is TargetStatus.DELETED:
            assert w.status_before not in (Status.RUNNING, Status.PENDING, Status.STOPPING), (
                f"deleted {w.id} while {w.status_before}"
            )
            assert w.delete_accepted_at is None, f"DELETE re-sent to {w.id}, already deleting"
        else:
            assert w.stop_accepted_at is None, f"STOP re-sent to {w.id}, already stopping"


@PROPERTY
@given(worlds())
def test_the_record_adds_up_never_unfinishes_and_tells_the_truth(world: World) -> None:
    final, snapshots = asyncio.run(run_world(world))
    previous = None
    for p in [*snapshots, final]:  # across the restart too
        check_counters(p, previous)
        previous = p
    assert final.terminal
    assert final.succeeded + final.failed == len(world.targets)
    assert sum(final.outcomes.values()) == final.succeeded

    done = set(expand(final.completed_indexes))
    for index, (kind, item_id, goal) in enumerate(world.targets):
        if index not in done:
            continue
        status = world.api.status_of(kind, item_id)
        if goal is TargetStatus.DELETED:
            assert status is None, f"{item_id} reported deleted but is {status}"
        else:
            assert status in (*SETTLED, None), f"{item_id} reported stopped but is {status}"
