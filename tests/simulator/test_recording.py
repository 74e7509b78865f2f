"""Request counters by route, and the record of protocol violations a client test asserts on."""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimClock, Simulator
from tests.simulator.helpers import MERGE_PATCH, bulk


@pytest.mark.simulator(bulk_updates=True)
async def test_a_correct_stop_then_delete_run_records_no_violation(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    sim.add_item(Kind.DEPLOYMENT, "unknown-1", Status.UNKNOWN, hold=True)
    await api.get("/v2/lm/meta")
    await bulk(
        api,
        Kind.DEPLOYMENT,
        ("running-1", TargetStatus.STOPPED),
        ("unknown-1", TargetStatus.DELETED),
    )
    clock.advance(sim.timings.stop_delay_seconds + sim.timings.stopping_seconds)
    states = (await api.get("/v2/lm/deployments", params={"$select": "status"})).json()["resources"]
    assert {r["id"]: r["status"] for r in states}["running-1"] == "STOPPED"
    await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.DELETED))
    clock.advance(sim.timings.deletion_seconds)
    assert (await api.get("/v2/lm/deployments/running-1")).status_code == 404
    assert sim.violations == []


async def test_violation_says_what_which_item_when_and_where(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "running-1", Status.RUNNING, resource_group="team-a")
    clock.advance(12.5)
    await api.delete("/v2/lm/executions/running-1", headers={"AI-Resource-Group": "team-a"})
    (violation,) = sim.violations
    assert (violation.code, violation.kind, violation.id) == (
        "IllegalDelete",
        Kind.EXECUTION,
        "running-1",
    )
    assert (violation.route, violation.resource_group, violation.http_status) == (
        "DELETE /lm/executions/{id}",
        "team-a",
        412,
    )
    assert violation.when == 12.5
    assert "RUNNING" in violation.what


@pytest.mark.simulator(bulk_updates=True)
async def test_each_illegal_request_is_recorded_once(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "stopped-1", Status.STOPPED)
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    await bulk(
        api,
        Kind.DEPLOYMENT,
        ("stopped-1", TargetStatus.STOPPED),
        ("running-1", TargetStatus.DELETED),
    )
    await bulk(api, Kind.DEPLOYMENT, *[(f"item-{n:03d}", TargetStatus.STOPPED) for n in range(101)])
    await bulk(
        api,
        Kind.DEPLOYMENT,
        ("stopped-1", TargetStatus.DELETED),
        ("stopped-1", TargetStatus.DELETED),
    )
    await api.get("/v2/lm/deployments", headers={"AI-Resource-Group": ""})
    await api.patch("/v2/lm/deployments/ghost-1", json={"targetStatus": "STOPPED"})
    assert [v.code for v in sim.violations] == [
        "IllegalStop",
        "IllegalDelete",
        "TooManyItems",
        "DuplicateId",
        "MissingResourceGroup",
        "NotFound",
    ]


async def test_polling_a_deleted_item_is_not_a_violation(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "stopped-1", Status.STOPPED)
    await api.delete("/v2/lm/deployments/stopped-1")
    clock.advance(sim.timings.deletion_seconds)
    assert (await api.get("/v2/lm/deployments/stopped-1")).status_code == 404
    assert sim.violations == []


async def test_requests_are_counted_per_method_and_route(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    await api.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("sim-client", "sim-secret")
    )
    await api.get("/v2/lm/meta")
    await api.get("/v2/lm/deployments")
    await api.get("/v2/lm/deployments")
    await api.get("/v2/lm/deployments/running-1")
    await api.get("/v2/lm/deployments/$count")
    await api.patch("/v2/lm/deployments", json={"deployments": []}, headers=MERGE_PATCH)
    await api.get("/_sim/health")
    assert sim.counters == {
        "POST /oauth/token": 1,
        "GET /lm/meta": 1,
        "GET /lm/deployments": 2,
        "GET /lm/deployments/{id}": 1,
        "GET /lm/deployments/$count": 1,
        "PATCH /lm/deployments": 1,
    }
    assert sim.responses["PATCH /lm/deployments 400"] == 1


async def test_counters_and_violations_reset_separately(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    await api.patch("/v2/lm/deployments/ghost-1", json={"targetStatus": "STOPPED"})
    sim.reset_counters()
    assert (sim.counters, len(sim.violations)) == ({}, 1)
    sim.clear_violations()
    assert sim.violations == []


async def test_counters_are_snapshots(sim: Simulator, api: httpx.AsyncClient) -> None:
    before = sim.counters
    await api.get("/v2/lm/meta")
    assert before == {}
    assert sim.counters["GET /lm/meta"] == 1
