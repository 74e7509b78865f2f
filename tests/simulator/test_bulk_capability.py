"""``bulkUpdates`` is off by default, as on AI Core ("The feature is set to false by default");
turned on (config, CLI, ``/_sim``), meta says so and bulk PATCH is served."""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Simulator, SimulatorConfig
from bulkterm.simulator.rules import CODE_BULK_UNSUPPORTED
from tests.simulator.helpers import KIND_PARAMS, bulk

OFF = {"deployments": False, "executions": False}
ON = {"deployments": True, "executions": True}


def test_the_product_default_is_off() -> None:
    assert SimulatorConfig().bulk_updates is False


async def test_meta_says_bulk_updates_false_by_default(api: httpx.AsyncClient) -> None:
    meta = (await api.get("/v2/lm/meta")).json()
    assert meta["aiApi"]["capabilities"]["bulkUpdates"] == OFF


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_by_default_bulk_patch_is_refused_and_nothing_changes(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "running-1", Status.RUNNING)
    response = await bulk(api, kind, ("running-1", TargetStatus.STOPPED))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == CODE_BULK_UNSUPPORTED
    assert [v.code for v in sim.violations] == ["BulkUpdatesDisabled"]
    assert sim.state_of(kind, "running-1") is Status.RUNNING


@pytest.mark.simulator(bulk_updates=True)
@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_turned_on_meta_says_true_and_bulk_patch_is_served(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "running-1", Status.RUNNING)
    meta = (await api.get("/v2/lm/meta")).json()
    response = await bulk(api, kind, ("running-1", TargetStatus.STOPPED))
    assert meta["aiApi"]["capabilities"]["bulkUpdates"] == ON
    assert response.status_code == 202
    assert sim.violations == []


async def test_single_calls_work_without_bulk_updates(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    response = await api.patch("/v2/lm/deployments/running-1", json={"targetStatus": "STOPPED"})
    assert response.status_code == 202


@pytest.mark.simulator(bulk_refusal_status=405)
async def test_refusal_status_is_configurable(api: httpx.AsyncClient) -> None:
    response = await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"


@pytest.mark.simulator(bulk_updates=True)
async def test_bulk_updates_can_be_switched_per_kind_at_runtime(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.set_bulk_updates(False, Kind.EXECUTION)
    deployments = await bulk(api, Kind.DEPLOYMENT, ("ghost-1", TargetStatus.STOPPED))
    executions = await bulk(api, Kind.EXECUTION, ("ghost-1", TargetStatus.STOPPED))
    assert (deployments.status_code, executions.status_code) == (202, 400)


async def test_bulk_updates_can_be_turned_on_at_runtime(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.set_bulk_updates(True)
    meta = (await api.get("/v2/lm/meta")).json()
    response = await bulk(api, Kind.DEPLOYMENT, ("ghost-1", TargetStatus.STOPPED))
    assert meta["aiApi"]["capabilities"]["bulkUpdates"] == ON
    assert response.status_code == 202
