"""The ``/_sim`` control API drives the simulator from outside Python."""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Faults, Simulator
from tests.simulator.conftest import http_client


async def test_health(raw: httpx.AsyncClient) -> None:
    assert (await raw.get("/_sim/health")).json() == {"status": "ok"}


async def test_seeding_specific_items_and_counts_in_a_group(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    body = {
        "resource_group": "team-a",
        "deployments": 3,
        "items": [
            {"kind": "Deployment", "id": "dep-stuck", "status": "UNKNOWN", "hold": True},
            {
                "kind": "Execution",
                "id": "exe-deleting",
                "status": "STOPPED",
                "target_status": "DELETED",
            },
        ],
    }
    response = await raw.post("/_sim/items", json=body)
    assert response.status_code == 201
    assert len(response.json()["created"]) == 5
    view = sim.item(Kind.EXECUTION, "exe-deleting", "team-a")
    assert view is not None and view.deleting
    item = (
        await raw.get("/_sim/items/deployments/dep-stuck", params={"resource_group": "team-a"})
    ).json()
    assert (item["status"], item["hold"]) == ("UNKNOWN", True)


async def test_listing_and_clearing_items(sim: Simulator, raw: httpx.AsyncClient) -> None:
    sim.seed(deployments=2, executions=3)
    listed = (await raw.get("/_sim/items", params={"kind": "execution"})).json()
    cleared = await raw.delete("/_sim/items")
    assert len(listed) == 3 and cleared.status_code == 200
    assert sim.items() == []


async def test_unknown_item_is_404(raw: httpx.AsyncClient) -> None:
    assert (await raw.get("/_sim/items/Deployment/ghost-1")).status_code == 404


async def test_bad_seed_request_is_400(raw: httpx.AsyncClient) -> None:
    response = await raw.post(
        "/_sim/items", json={"items": [{"kind": "Deployment", "id": "x", "status": "UP"}]}
    )
    assert response.status_code == 400


async def test_faults_are_replaced_with_put_and_merged_with_patch(
    sim: Simulator, raw: httpx.AsyncClient
) -> None:
    await raw.put("/_sim/faults", json={"error_rate": 0.25, "retry_after": 3})
    await raw.patch("/_sim/faults", json={"throttle_rate": 0.5})
    assert sim.faults == Faults(error_rate=0.25, retry_after=3, throttle_rate=0.5)
    await raw.put("/_sim/faults", json={})
    assert sim.faults == Faults()


@pytest.mark.parametrize("body", [{"eror_rate": 0.5}, {"error_rate": 2}, {"error_status": 404}])
async def test_invalid_faults_are_400(raw: httpx.AsyncClient, body: dict[str, object]) -> None:
    assert (await raw.put("/_sim/faults", json=body)).status_code == 400


async def test_timings_can_be_changed(sim: Simulator, raw: httpx.AsyncClient) -> None:
    response = await raw.patch(
        "/_sim/timings", json={"deletion_seconds": 1, "execution_run_seconds": None}
    )
    assert response.status_code == 200
    assert (sim.timings.deletion_seconds, sim.timings.execution_run_seconds) == (1, None)


async def test_bulk_capability_can_be_switched_per_kind(
    sim: Simulator, raw: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    await raw.put("/_sim/capabilities", json={"bulk_updates": {"deployments": True}})
    meta = (await api.get("/v2/lm/meta")).json()
    assert meta["aiApi"]["capabilities"]["bulkUpdates"] == {
        "executions": False,
        "deployments": True,
    }


async def test_bulk_capability_can_be_switched_for_both_kinds(
    sim: Simulator, raw: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    answer = await raw.put("/_sim/capabilities", json={"bulk_updates": True})
    meta = (await api.get("/v2/lm/meta")).json()
    assert answer.json() == {"bulk_updates": {"deployments": True, "executions": True}}
    assert meta["aiApi"]["capabilities"]["bulkUpdates"] == {
        "executions": True,
        "deployments": True,
    }


async def test_counters_and_violations_can_be_read_and_reset(
    raw: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    await api.delete("/v2/lm/deployments/ghost-1")
    counters = (await raw.get("/_sim/counters")).json()
    violations = (await raw.get("/_sim/violations")).json()
    assert counters["requests"] == {"DELETE /lm/deployments/{id}": 1}
    assert counters["responses"] == {"DELETE /lm/deployments/{id} 404": 1}
    assert [(v["code"], v["kind"], v["id"]) for v in violations] == [
        ("NotFound", "Deployment", "ghost-1")
    ]
    await raw.delete("/_sim/counters")
    await raw.delete("/_sim/violations")
    assert (await raw.get("/_sim/counters")).json() == {"requests": {}, "responses": {}}
    assert (await raw.get("/_sim/violations")).json() == []


async def test_clock_advances_a_simulated_clock(sim: Simulator, raw: httpx.AsyncClient) -> None:
    sim.add_item(Kind.DEPLOYMENT, "pending-1", Status.PENDING)
    response = await raw.post("/_sim/clock/advance", json={"seconds": sim.timings.pending_seconds})
    assert response.json()["now"] == sim.timings.pending_seconds
    assert sim.state_of(Kind.DEPLOYMENT, "pending-1") is Status.RUNNING


async def test_clock_cannot_advance_a_real_clock(simulator: Simulator) -> None:
    async with http_client(simulator.url) as client:
        response = await client.post("/_sim/clock/advance", json={"seconds": 1})
    assert response.status_code == 409


async def test_tokens_can_be_revoked(raw: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    await raw.post("/_sim/tokens/revoke")
    assert (await api.get("/v2/lm/meta")).status_code == 401


async def test_state_summarises_items_per_group(sim: Simulator, raw: httpx.AsyncClient) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "stopped-1", Status.STOPPED, target_status="DELETED")
    state = (await raw.get("/_sim/state")).json()
    assert state["items"] == {
        "default": {"deployments": {"RUNNING": 1, "STOPPED": 1, "deleting": 1}}
    }
    assert state["simulated_clock"] is True
    assert state["bulk_updates"] == {"deployments": False, "executions": False}
    assert state["resource_groups"] == ["default"]


async def test_reset_forgets_items_counters_and_violations(
    sim: Simulator, raw: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    sim.seed(deployments=3)
    await api.delete("/v2/lm/deployments/ghost-1")
    await raw.post("/_sim/reset")
    assert (sim.items(), sim.counters, sim.violations) == ([], {}, [])


@pytest.mark.simulator(control_api=False)
async def test_control_api_can_be_turned_off(raw: httpx.AsyncClient) -> None:
    assert (await raw.get("/_sim/health")).status_code == 404
