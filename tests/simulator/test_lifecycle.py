"""Items move through AI Core's statuses by themselves, computed from the clock when looked at."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimClock, Simulator, Timings
from bulkterm.simulator.seeding import CONFIGURATIONS
from tests.simulator.conftest import http_client
from tests.simulator.helpers import bulk


async def create(api: httpx.AsyncClient, kind: Kind) -> str:
    response = await api.post(
        f"/v2/lm/{kind.collection}", json={"configurationId": CONFIGURATIONS[kind][0].id}
    )
    item_id: str = response.json()["id"]
    return item_id


async def get(api: httpx.AsyncClient, kind: Kind, item_id: str) -> dict[str, Any]:
    body: dict[str, Any] = (await api.get(f"/v2/lm/{kind.collection}/{item_id}")).json()
    return body


async def test_created_deployment_goes_unknown_pending_running_and_stays(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    timings = sim.timings
    item = await create(api, Kind.DEPLOYMENT)
    seen = [(await get(api, Kind.DEPLOYMENT, item))["status"]]
    assert timings.unknown_seconds is not None
    clock.advance(timings.unknown_seconds)
    seen.append((await get(api, Kind.DEPLOYMENT, item))["status"])
    clock.advance(timings.pending_seconds)
    seen.append((await get(api, Kind.DEPLOYMENT, item))["status"])
    clock.advance(1800)  # long, but within the api fixture's token lifetime
    body = await get(api, Kind.DEPLOYMENT, item)
    assert seen == ["UNKNOWN", "PENDING", "RUNNING"]
    assert (body["status"], body["targetStatus"]) == ("RUNNING", "RUNNING")


async def test_created_execution_runs_to_completed(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    item = await create(api, Kind.EXECUTION)
    first = await get(api, Kind.EXECUTION, item)
    run = sim.timings.execution_run_seconds
    assert sim.timings.unknown_seconds is not None and run is not None
    clock.advance(sim.timings.unknown_seconds + sim.timings.pending_seconds)
    running = await get(api, Kind.EXECUTION, item)
    clock.advance(run)
    done = await get(api, Kind.EXECUTION, item)
    assert (first["status"], first["targetStatus"]) == ("UNKNOWN", "COMPLETED")
    assert running["status"] == "RUNNING" and "startTime" in running
    assert done["status"] == "COMPLETED" and "completionTime" in done


@pytest.mark.simulator(timings=Timings(execution_run_seconds=None))
async def test_executions_can_be_configured_never_to_complete(
    sim: Simulator, clock: SimClock
) -> None:
    sim.add_item(Kind.EXECUTION, "training-1", Status.RUNNING)
    clock.advance(365 * 24 * 3600)
    assert sim.state_of(Kind.EXECUTION, "training-1") is Status.RUNNING


@pytest.mark.simulator(timings=Timings(unknown_seconds=None))
async def test_items_can_be_configured_to_stay_unknown(sim: Simulator, clock: SimClock) -> None:
    sim.add_item(Kind.DEPLOYMENT, "stuck-1", Status.UNKNOWN)
    clock.advance(3600)
    assert sim.state_of(Kind.DEPLOYMENT, "stuck-1") is Status.UNKNOWN


@pytest.mark.simulator(bulk_updates=True)
@pytest.mark.parametrize("start", [Status.RUNNING, Status.PENDING])
async def test_stopped_item_goes_through_stopping_to_stopped(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient, start: Status
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "item-1", start)
    await bulk(api, Kind.DEPLOYMENT, ("item-1", TargetStatus.STOPPED))
    seen = [sim.state_of(Kind.DEPLOYMENT, "item-1")]
    clock.advance(sim.timings.stop_delay_seconds)
    seen.append(sim.state_of(Kind.DEPLOYMENT, "item-1"))
    clock.advance(sim.timings.stopping_seconds)
    body = await get(api, Kind.DEPLOYMENT, "item-1")
    assert seen == [start, Status.STOPPING]
    assert (body["status"], body["targetStatus"]) == ("STOPPED", "STOPPED")


@pytest.mark.parametrize("kind", [Kind.DEPLOYMENT, Kind.EXECUTION])
async def test_deleted_item_shows_target_deleted_for_a_while_then_is_gone(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "stopped-1", Status.STOPPED)
    await api.delete(f"/v2/lm/{kind.collection}/stopped-1")
    clock.advance(sim.timings.deletion_seconds - 0.001)
    during = await get(api, kind, "stopped-1")
    listed = (await api.get(f"/v2/lm/{kind.collection}")).json()["resources"]
    view = sim.item(kind, "stopped-1")
    clock.advance(0.001)
    after = await api.get(f"/v2/lm/{kind.collection}/stopped-1")
    assert (during["status"], during["targetStatus"]) == ("STOPPED", "DELETED")
    assert [(r["id"], r["targetStatus"]) for r in listed] == [("stopped-1", "DELETED")]
    assert view is not None and view.deleting
    assert after.status_code == 404
    assert (await api.get(f"/v2/lm/{kind.collection}")).json() == {"count": 0, "resources": []}
    assert sim.state_of(kind, "stopped-1") is None


async def test_unknown_deployment_can_be_deleted_directly_and_stays_unknown_meanwhile(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    item = await create(api, Kind.DEPLOYMENT)
    response = await api.delete(f"/v2/lm/deployments/{item}")
    clock.advance(sim.timings.deletion_seconds / 2)
    assert response.status_code == 202
    assert sim.state_of(Kind.DEPLOYMENT, item) is Status.UNKNOWN


@pytest.mark.parametrize("kind", [Kind.DEPLOYMENT, Kind.EXECUTION])
async def test_items_configured_to_die_go_dead_instead_of_running(
    sim: Simulator, clock: SimClock, kind: Kind
) -> None:
    sim.add_item(kind, "doomed-1", Status.PENDING, goes_dead=True)
    clock.advance(sim.timings.pending_seconds)
    assert sim.state_of(kind, "doomed-1") is Status.DEAD


async def test_running_items_configured_to_die_go_dead_after_a_while(
    sim: Simulator, clock: SimClock
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "doomed-1", Status.RUNNING, goes_dead=True)
    clock.advance(sim.timings.dead_after_seconds)
    assert sim.state_of(Kind.DEPLOYMENT, "doomed-1") is Status.DEAD


@pytest.mark.simulator(bulk_updates=True)
async def test_held_items_never_change_status_even_when_stopped(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "stuck-1", Status.RUNNING, hold=True)
    response = await bulk(api, Kind.DEPLOYMENT, ("stuck-1", TargetStatus.STOPPED))
    clock.advance(3600)
    view = sim.item(Kind.DEPLOYMENT, "stuck-1")
    assert "message" in response.json()["deployments"][0]
    assert view is not None and (view.status, view.target_status) == (Status.RUNNING, "STOPPED")


async def test_one_big_jump_ends_where_many_small_steps_do(sim: Simulator, clock: SimClock) -> None:
    sim.add_item(Kind.EXECUTION, "watched", Status.UNKNOWN)
    sim.add_item(Kind.EXECUTION, "unwatched", Status.UNKNOWN)
    for _ in range(200):
        clock.advance(0.5)
        sim.state_of(Kind.EXECUTION, "watched")
    watched, unwatched = sim.item(Kind.EXECUTION, "watched"), sim.item(Kind.EXECUTION, "unwatched")
    assert watched is not None and unwatched is not None
    assert (watched.status, watched.modified_at) == (unwatched.status, unwatched.modified_at)
    assert watched.status is Status.COMPLETED


async def test_changed_timings_apply_to_items_already_in_a_phase(
    sim: Simulator, clock: SimClock
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "pending-1", Status.PENDING)
    clock.advance(1)
    sim.set_timings(Timings(pending_seconds=1.5))
    clock.advance(0.5)
    assert sim.state_of(Kind.DEPLOYMENT, "pending-1") is Status.RUNNING


async def test_unknown_deployment_carries_the_transient_not_found_message(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    item = await create(api, Kind.DEPLOYMENT)
    body = await get(api, Kind.DEPLOYMENT, item)
    assert body["statusMessage"] == f"Deployment ID {item} not found"


@pytest.mark.simulator(bulk_updates=True)
async def test_fast_fixture_runs_a_whole_stop_in_real_time(simulator: Simulator) -> None:
    simulator.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    headers = {"Authorization": f"Bearer {simulator.issue_token()}", "AI-Resource-Group": "default"}
    async with http_client(simulator.url, headers=headers) as api:
        await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
        for _ in range(100):
            if simulator.state_of(Kind.DEPLOYMENT, "running-1") is Status.STOPPED:
                break
            await asyncio.sleep(0.02)
    assert simulator.state_of(Kind.DEPLOYMENT, "running-1") is Status.STOPPED
