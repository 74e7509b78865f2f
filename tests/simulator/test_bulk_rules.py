"""Stop and delete follow AI Core's status table, in bulk (per item, inside a 202) and one by one
(request level: 412 for a refused status, 404 for an unknown id).

The one difference: a bulk DELETE takes only stopped, dead or unknown items (SAP's bulk pages),
while a single DELETE also takes a COMPLETED execution (the status table, "Completed, Dead,
Stopped, or Unknown")."""

from __future__ import annotations

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import SimClock, Simulator
from bulkterm.simulator.rules import (
    CODE_BEING_DELETED,
    CODE_CANNOT_DELETE,
    CODE_CANNOT_STOP,
    CODE_NOT_FOUND,
)
from tests.simulator.helpers import MODIFIED, STATUSES, bulk, by_id, seed_every_status

pytestmark = pytest.mark.simulator(bulk_updates=True)

STOPPABLE = {Status.PENDING, Status.RUNNING}
#: The seed doc: "Only stopped, dead or unknown executions or deployments can be deleted".
BULK_DELETABLE = {Status.UNKNOWN, Status.STOPPED, Status.DEAD}
#: SAP's delete-an-execution page: "Completed, Dead, Stopped, or Unknown".
SINGLE_DELETABLE = {
    Kind.DEPLOYMENT: {Status.UNKNOWN, Status.STOPPED, Status.DEAD},
    Kind.EXECUTION: {Status.UNKNOWN, Status.STOPPED, Status.DEAD, Status.COMPLETED},
}
TABLE = [
    pytest.param(kind, status, target, id=f"{kind}-{status}-{target}")
    for kind in Kind
    for status in STATUSES[kind]
    for target in TargetStatus
]


def allowed(kind: Kind, status: Status, target: TargetStatus, *, bulk: bool) -> bool:
    if target is TargetStatus.STOPPED:
        return status in STOPPABLE
    return status in (BULK_DELETABLE if bulk else SINGLE_DELETABLE[kind])


@pytest.mark.parametrize(("kind", "status", "target"), TABLE)
async def test_bulk_item_follows_the_status_table(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind, status: Status, target: TargetStatus
) -> None:
    sim.add_item(kind, "item-under-test", status)
    response = await bulk(api, kind, ("item-under-test", target))
    assert response.status_code == 202
    (result,) = response.json()[kind.collection]
    if allowed(kind, status, target, bulk=True):
        assert result == {"id": "item-under-test", "message": MODIFIED[kind]}
        assert sim.violations == []
        view = sim.item(kind, "item-under-test")
        assert view is not None and view.target_status == str(target)
    else:
        expected = CODE_CANNOT_STOP if target is TargetStatus.STOPPED else CODE_CANNOT_DELETE
        assert result["error"]["code"] == expected
        assert [(v.code, v.id) for v in sim.violations] == [
            (
                "IllegalStop" if target is TargetStatus.STOPPED else "IllegalDelete",
                "item-under-test",
            )
        ]
        assert sim.state_of(kind, "item-under-test") is status


@pytest.mark.parametrize(("kind", "status", "target"), TABLE)
async def test_single_call_follows_the_status_table(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind, status: Status, target: TargetStatus
) -> None:
    sim.add_item(kind, "item-under-test", status)
    path = f"/v2/lm/{kind.collection}/item-under-test"
    if target is TargetStatus.STOPPED:
        response = await api.patch(path, json={"targetStatus": "STOPPED"})
    else:
        response = await api.delete(path)
    if allowed(kind, status, target, bulk=False):
        assert response.status_code == 202
        assert sim.violations == []
    else:
        assert response.status_code == 412
        expected = CODE_CANNOT_STOP if target is TargetStatus.STOPPED else CODE_CANNOT_DELETE
        assert response.json()["error"]["code"] == expected
        assert len(sim.violations) == 1


@pytest.mark.parametrize("kind", [Kind.DEPLOYMENT, Kind.EXECUTION])
async def test_stopping_an_unknown_item_answers_the_documented_error(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "unknown-1", Status.UNKNOWN)
    (result,) = (await bulk(api, kind, ("unknown-1", TargetStatus.STOPPED))).json()[kind.collection]
    assert result["error"]["code"] == "01010076"
    assert (
        result["error"]["message"] == "Invalid Request, Current status UNKNOWN cannot be changed.."
    )


@pytest.mark.parametrize("kind", [Kind.DEPLOYMENT, Kind.EXECUTION])
async def test_unknown_id_in_bulk_is_a_per_item_not_found(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "running-1", Status.RUNNING)
    response = await bulk(
        api, kind, ("running-1", TargetStatus.STOPPED), ("ghost-1", TargetStatus.DELETED)
    )
    assert response.status_code == 202
    results = by_id(response, kind)
    assert "message" in results["running-1"]
    assert results["ghost-1"]["error"]["code"] == CODE_NOT_FOUND
    assert [(v.code, v.id) for v in sim.violations] == [("NotFound", "ghost-1")]


@pytest.mark.parametrize("kind", [Kind.DEPLOYMENT, Kind.EXECUTION])
async def test_unknown_id_in_single_calls_is_a_404(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    patched = await api.patch(f"/v2/lm/{kind.collection}/ghost-1", json={"targetStatus": "STOPPED"})
    deleted = await api.delete(f"/v2/lm/{kind.collection}/ghost-1")
    assert (patched.status_code, deleted.status_code) == (404, 404)
    assert patched.json()["error"]["code"] == CODE_NOT_FOUND
    assert [v.code for v in sim.violations] == ["NotFound", "NotFound"]


@pytest.mark.parametrize("kind", [Kind.DEPLOYMENT, Kind.EXECUTION])
async def test_an_item_being_deleted_refuses_further_changes(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "stopped-1", Status.STOPPED)
    assert (await api.delete(f"/v2/lm/{kind.collection}/stopped-1")).status_code == 202
    again = await bulk(api, kind, ("stopped-1", TargetStatus.DELETED))
    single = await api.delete(f"/v2/lm/{kind.collection}/stopped-1")
    stop = await api.patch(f"/v2/lm/{kind.collection}/stopped-1", json={"targetStatus": "STOPPED"})
    assert again.json()[kind.collection][0]["error"]["code"] == CODE_BEING_DELETED
    assert (single.status_code, stop.status_code) == (412, 412)
    assert [v.code for v in sim.violations] == ["BeingDeleted"] * 3


@pytest.mark.parametrize("kind", [Kind.DEPLOYMENT, Kind.EXECUTION])
async def test_stop_and_delete_can_be_mixed_and_results_keep_request_order(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    ids = seed_every_status(sim, kind)
    order = [
        (ids[Status.RUNNING], TargetStatus.STOPPED),
        (ids[Status.DEAD], TargetStatus.DELETED),
        (ids[Status.PENDING], TargetStatus.STOPPED),
        (ids[Status.UNKNOWN], TargetStatus.DELETED),
    ]
    response = await bulk(api, kind, *order)
    results = response.json()[kind.collection]
    assert [r["id"] for r in results] == [i for i, _ in order]
    assert all(r["message"] == MODIFIED[kind] for r in results)
    assert sim.violations == []


async def test_a_repeated_stop_while_still_running_is_accepted(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    first = await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    view = sim.item(Kind.DEPLOYMENT, "running-1")
    assert view is not None and (view.status, view.target_status) == (Status.RUNNING, "STOPPED")
    second = await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    assert "message" in first.json()["deployments"][0]
    assert "message" in second.json()["deployments"][0]
    assert sim.violations == []


async def test_stop_is_refused_once_the_item_is_stopping(
    sim: Simulator, clock: SimClock, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    clock.advance(sim.timings.stop_delay_seconds)
    assert sim.state_of(Kind.DEPLOYMENT, "running-1") is Status.STOPPING
    again = await bulk(api, Kind.DEPLOYMENT, ("running-1", TargetStatus.STOPPED))
    assert again.json()["deployments"][0]["error"]["code"] == CODE_CANNOT_STOP


async def test_bulk_delete_of_a_completed_execution_is_refused_but_a_single_delete_is_not(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "completed-1", Status.COMPLETED)
    sim.add_item(Kind.EXECUTION, "completed-2", Status.COMPLETED)
    sim.add_item(Kind.EXECUTION, "stopped-1", Status.STOPPED)
    in_bulk = await bulk(
        api,
        Kind.EXECUTION,
        ("completed-1", TargetStatus.DELETED),
        ("stopped-1", TargetStatus.DELETED),
    )
    single = await api.delete("/v2/lm/executions/completed-2")
    assert in_bulk.status_code == 202
    refused, accepted = in_bulk.json()["executions"]
    assert refused["id"] == "completed-1"
    assert refused["error"]["code"] == CODE_CANNOT_DELETE
    assert "COMPLETED" in refused["error"]["message"]
    assert accepted == {"id": "stopped-1", "message": MODIFIED[Kind.EXECUTION]}
    assert single.status_code == 202
    assert [(v.code, v.id, v.http_status) for v in sim.violations] == [
        ("IllegalDelete", "completed-1", 202)
    ]
    completed = sim.item(Kind.EXECUTION, "completed-1")
    assert completed is not None and not completed.deleting


@pytest.mark.simulator(bulk_delete_completed=True)
async def test_bulk_delete_of_completed_executions_can_be_allowed_as_the_status_table_says(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "completed-1", Status.COMPLETED)
    in_bulk = await bulk(api, Kind.EXECUTION, ("completed-1", TargetStatus.DELETED))
    assert in_bulk.json()["executions"][0] == {
        "id": "completed-1",
        "message": MODIFIED[Kind.EXECUTION],
    }


async def test_nothing_of_a_malformed_bulk_request_is_applied(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    response = await bulk(
        api,
        Kind.DEPLOYMENT,
        ("running-1", TargetStatus.STOPPED),
        ("running-1", TargetStatus.DELETED),
    )
    assert response.status_code == 400
    view = sim.item(Kind.DEPLOYMENT, "running-1")
    assert view is not None and view.target_status == "RUNNING"
