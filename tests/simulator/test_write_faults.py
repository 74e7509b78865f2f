"""Changes an item makes by itself at a planned time, and faults injected into writes.

Planned changes replay in time order with the item's flow; an accepted stop or delete cancels
the planned status changes but not a planned vanishing. Write faults (an injected error, a
write accepted and lost, bulk PATCH refused although advertised) are never violations.
"""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimClock, Simulator, Timings
from bulkterm.simulator.faults import InjectedRefusal
from tests.simulator.helpers import MODIFIED, bulk, by_id

pytestmark = pytest.mark.simulator(bulk_updates=True)

D, E = Kind.DEPLOYMENT, Kind.EXECUTION


def test_a_planned_status_comes_at_its_time_whatever_the_flow(
    sim: Simulator, clock: SimClock
) -> None:
    sim.add_item(D, "dep-0001", Status.UNKNOWN)
    sim.plan_change(D, "dep-0001", 1.0, Status.DEAD)
    clock.advance(0.5)
    assert sim.state_of(D, "dep-0001") is Status.UNKNOWN
    clock.advance(sim.timings.pending_seconds + 10)  # the flow would have moved it on by now
    assert sim.state_of(D, "dep-0001") is Status.DEAD


def test_planned_changes_replay_in_time_order_with_the_flow(
    sim: Simulator, clock: SimClock
) -> None:
    assert sim.timings.unknown_seconds is not None
    sim.add_item(E, "exe-0001", Status.UNKNOWN)
    sim.plan_change(E, "exe-0001", sim.timings.unknown_seconds + 1.0, Status.COMPLETED)
    clock.advance(sim.timings.unknown_seconds + 0.5)
    assert sim.state_of(E, "exe-0001") is Status.PENDING  # the flow came first
    clock.advance(0.5)
    assert sim.state_of(E, "exe-0001") is Status.COMPLETED


def test_a_planned_vanishing_removes_the_item(sim: Simulator, clock: SimClock) -> None:
    sim.add_item(D, "dep-0001", Status.RUNNING)
    sim.plan_change(D, "dep-0001", 5.0, None)
    clock.advance(4.9)
    assert sim.item(D, "dep-0001") is not None
    clock.advance(0.1)
    assert sim.item(D, "dep-0001") is None


def test_a_deployment_never_completes(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="never completes"):
        sim.add_item(D, "dep-0001", Status.COMPLETED)
    sim.add_item(D, "dep-0002", Status.RUNNING)
    with pytest.raises(ValueError, match="never completes"):
        sim.plan_change(D, "dep-0002", 1.0, Status.COMPLETED)


async def test_an_accepted_stop_cancels_planned_status_changes_not_a_vanishing(
    sim: Simulator, api: httpx.AsyncClient, clock: SimClock
) -> None:
    sim.add_item(D, "dep-stop", Status.RUNNING)
    sim.add_item(D, "dep-gone", Status.RUNNING)
    sim.plan_change(D, "dep-stop", 1.0, Status.DEAD)
    sim.plan_change(D, "dep-gone", 1.0, None)
    response = await bulk(api, D, ("dep-stop", TargetStatus.STOPPED), ("dep-gone", "STOPPED"))
    assert response.status_code == 202
    clock.advance(1.0)
    assert sim.state_of(D, "dep-gone") is None
    clock.advance(sim.timings.stop_delay_seconds + sim.timings.stopping_seconds)
    assert sim.state_of(D, "dep-stop") is Status.STOPPED


async def test_the_item_shows_when_the_api_accepted_its_stop_and_its_delete(
    sim: Simulator, api: httpx.AsyncClient, clock: SimClock
) -> None:
    sim.add_item(D, "dep-0001", Status.RUNNING)
    view = sim.item(D, "dep-0001")
    assert view is not None and (view.stop_accepted_at, view.delete_accepted_at) == (None, None)
    await bulk(api, D, ("dep-0001", TargetStatus.STOPPED))
    clock.advance(sim.timings.stop_delay_seconds + sim.timings.stopping_seconds)
    await bulk(api, D, ("dep-0001", TargetStatus.DELETED))
    view = sim.item(D, "dep-0001")
    assert view is not None and view.stop_accepted_at is not None
    assert view.delete_accepted_at is not None and view.delete_accepted_at > view.stop_accepted_at


def test_remove_item_makes_it_vanish_at_once(sim: Simulator) -> None:
    sim.add_item(E, "exe-0001", Status.RUNNING)
    assert sim.remove_item(E, "exe-0001") is True
    assert sim.item(E, "exe-0001") is None
    assert sim.remove_item(E, "exe-0001") is False


async def test_an_injected_refusal_answers_the_next_writes_whatever_the_state(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(D, "dep-0001", Status.RUNNING)
    sim.backend.injector.refusals["dep-0001"] = [InjectedRefusal("0103", "try later")] * 2
    (result,) = (await bulk(api, D, ("dep-0001", TargetStatus.STOPPED))).json()["deployments"]
    assert (result["error"]["code"], result["error"]["message"]) == ("0103", "try later")
    single = await api.patch("/v2/lm/deployments/dep-0001", json={"targetStatus": "STOPPED"})
    assert (single.status_code, single.json()["error"]["code"]) == (412, "0103")
    assert sim.state_of(D, "dep-0001") is Status.RUNNING
    answer = by_id(await bulk(api, D, ("dep-0001", TargetStatus.STOPPED)), D)
    assert answer["dep-0001"] == {"id": "dep-0001", "message": MODIFIED[D]}
    assert sim.violations == []


async def test_an_ineffective_write_is_accepted_and_changes_nothing(
    sim: Simulator, api: httpx.AsyncClient, clock: SimClock
) -> None:
    sim.add_item(D, "dep-0001", Status.RUNNING)
    sim.add_item(D, "dep-0002", Status.STOPPED)
    sim.backend.injector.ineffective.update({"dep-0001", "dep-0002"})
    answer = by_id(
        await bulk(api, D, ("dep-0001", TargetStatus.STOPPED), ("dep-0002", "DELETED")), D
    )
    assert all("error" not in result for result in answer.values())
    deleted = await api.delete("/v2/lm/deployments/dep-0002")
    assert deleted.status_code == 202
    clock.advance(3600)
    view = sim.item(D, "dep-0001")
    assert view is not None and (view.status, view.target_status) == (Status.RUNNING, "RUNNING")
    assert sim.state_of(D, "dep-0002") is Status.STOPPED
    assert sim.violations == []


async def test_bulk_patch_refused_although_advertised_is_no_violation(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(E, "exe-0001", Status.RUNNING)
    sim.backend.injector.bulk_refused.add(E)
    meta = (await api.get("/v2/lm/meta")).json()
    assert meta["aiApi"]["capabilities"]["bulkUpdates"]["executions"] is True
    response = await bulk(api, E, ("exe-0001", TargetStatus.STOPPED))
    assert response.status_code == 400
    assert "not enabled" in response.json()["error"]["message"]
    assert sim.violations == []
    assert sim.state_of(E, "exe-0001") is Status.RUNNING


@pytest.mark.simulator(timings=Timings(unknown_seconds=None))
def test_a_held_item_still_takes_its_planned_changes(sim: Simulator, clock: SimClock) -> None:
    sim.add_item(D, "dep-0001", Status.STOPPING, hold=True)
    sim.plan_change(D, "dep-0001", 7.0, Status.STOPPED)
    clock.advance(6.9)
    assert sim.state_of(D, "dep-0001") is Status.STOPPING
    clock.advance(0.1)
    assert sim.state_of(D, "dep-0001") is Status.STOPPED
