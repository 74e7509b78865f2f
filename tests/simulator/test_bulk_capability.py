"""``bulkUpdates`` is on by default; switched off, meta says so and bulk PATCH is refused."""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Simulator
from bulkterm.simulator.rules import CODE_BULK_UNSUPPORTED
from tests.simulator.helpers import KIND_PARAMS, bulk


async def test_meta_announces_bulk_updates_for_both_kinds_by_default(
    api: httpx.AsyncClient,
) -> None:
    meta = (await api.get("/v2/lm/meta")).json()
    assert meta["aiApi"]["capabilities"]["bulkUpdates"] == {"deployments": True, "executions": True}


@pytest.mark.simulator(bulk_updates=False)
@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_without_bulk_updates_meta_says_false_and_bulk_patch_is_refused(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "running-1", Status.RUNNING)
    meta = (await api.get("/v2/lm/meta")).json()
    response = await bulk(api, kind, ("running-1", TargetStatus.STOPPED))
    assert meta["aiApi"]["capabilities"]["bulkUpdates"] == {
        "deployments": False,
        "executions": False,
    }
    assert response.status_code == 400
    assert response.json()["error"]["code"] == CODE_BULK_UNSUPPORTED
    assert [v.code for v in sim.violations] == ["BulkUpdatesDisabled"]
    assert sim.state_of(kind, "running-1") is Status.RUNNING


@pytest.mark.simulator(bulk_updates=False)
async def test_without_bulk_updates_single_calls_still_work(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    response = await api.patch("/v2/lm/deployments/running-1", json={"targetStatus": "STOPPED"})
    assert response.status_code == 202


@pytest.mark.simulator(bulk_updates=False, bulk_refusal_status=405)
async def test_refusal_status_is_configurable(api: httpx.AsyncClient) -> None:
    response = await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


async def test_bulk_updates_can_be_switched_per_kind_at_runtime(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.set_bulk_updates(False, Kind.EXECUTION)
    deployments = await bulk(api, Kind.DEPLOYMENT, ("ghost-1", TargetStatus.STOPPED))
    executions = await bulk(api, Kind.EXECUTION, ("ghost-1", TargetStatus.STOPPED))
    assert (deployments.status_code, executions.status_code) == (202, 400)
