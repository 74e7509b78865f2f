"""Malformed requests are refused as a whole (400, or 415 for a body of the wrong media type)
and recorded."""

from __future__ import annotations

import json

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status, TargetStatus
from bulkterm.simulator import Simulator
from bulkterm.simulator.seeding import CONFIGURATIONS
from tests.simulator.helpers import KIND_PARAMS, MERGE_PATCH, bulk, bulk_body

pytestmark = pytest.mark.simulator(bulk_updates=True)


def ids(count: int) -> list[str]:
    return [f"item-{n:04d}" for n in range(count)]


async def patch_json(api: httpx.AsyncClient, kind: Kind, body: object) -> httpx.Response:
    return await api.patch(f"/v2/lm/{kind.collection}", json=body, headers=MERGE_PATCH)


def violation_codes(sim: Simulator) -> list[str]:
    return [v.code for v in sim.violations]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_bulk_of_more_than_100_items_is_refused(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    for item in ids(101):
        sim.add_item(kind, item, Status.RUNNING)
    response = await bulk(api, kind, *[(i, TargetStatus.STOPPED) for i in ids(101)])
    assert response.status_code == 400
    assert violation_codes(sim) == ["TooManyItems"]
    assert sim.state_of(kind, "item-0000") is Status.RUNNING


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_bulk_of_exactly_100_items_is_accepted(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    for item in ids(100):
        sim.add_item(kind, item, Status.RUNNING)
    response = await bulk(api, kind, *[(i, TargetStatus.STOPPED) for i in ids(100)])
    assert response.status_code == 202
    assert len(response.json()[kind.collection]) == 100
    assert sim.violations == []


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_bulk_naming_an_id_twice_is_refused(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "stopped-1", Status.STOPPED)
    response = await bulk(
        api, kind, ("stopped-1", TargetStatus.DELETED), ("stopped-1", TargetStatus.DELETED)
    )
    assert response.status_code == 400
    assert [(v.code, v.id) for v in sim.violations] == [("DuplicateId", "stopped-1")]


@pytest.mark.parametrize("target", ["RUNNING", "COMPLETED", "stopped", ""])
async def test_bulk_with_a_target_status_other_than_stopped_or_deleted_is_refused(
    sim: Simulator, api: httpx.AsyncClient, target: str
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    response = await bulk(api, Kind.DEPLOYMENT, ("running-1", target))
    assert response.status_code == 400
    assert violation_codes(sim) == ["InvalidTargetStatus"]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_bulk_with_an_empty_list_is_refused(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    response = await patch_json(api, kind, {kind.collection: []})
    assert response.status_code == 400
    assert violation_codes(sim) == ["EmptyBatch"]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_bulk_under_the_other_collection_key_is_refused(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    other = Kind.EXECUTION if kind is Kind.DEPLOYMENT else Kind.DEPLOYMENT
    sim.add_item(kind, "running-1", Status.RUNNING)
    response = await patch_json(api, kind, bulk_body(other, ("running-1", TargetStatus.STOPPED)))
    assert response.status_code == 400
    assert violation_codes(sim) == ["WrongCollectionKey"]


@pytest.mark.parametrize(
    "body", [{}, [], "deployments", {"deployments": {"id": "abcd"}}, {"deployments": ["abcd"]}]
)
async def test_bulk_body_of_the_wrong_form_is_refused(
    sim: Simulator, api: httpx.AsyncClient, body: object
) -> None:
    response = await patch_json(api, Kind.DEPLOYMENT, body)
    assert response.status_code == 400
    assert len(sim.violations) == 1


@pytest.mark.parametrize("bad_id", ["abc", "has space", "x" * 65, "slash/id"])
async def test_bulk_item_with_an_id_outside_the_pattern_is_refused(
    sim: Simulator, api: httpx.AsyncClient, bad_id: str
) -> None:
    response = await bulk(api, Kind.DEPLOYMENT, (bad_id, TargetStatus.DELETED))
    assert response.status_code == 400
    assert violation_codes(sim) == ["InvalidId"]


async def test_body_that_is_not_json_is_refused(sim: Simulator, api: httpx.AsyncClient) -> None:
    response = await api.patch("/v2/lm/deployments", content=b"{not json", headers=MERGE_PATCH)
    assert response.status_code == 400
    assert violation_codes(sim) == ["MalformedRequest"]


#: (method, path, what the spec declares as the request body's media type)
WRITES = [
    ("PATCH", "/v2/lm/deployments", "application/merge-patch+json"),
    ("PATCH", "/v2/lm/executions", "application/merge-patch+json"),
    ("PATCH", "/v2/lm/deployments/running-1", "application/json"),
    ("PATCH", "/v2/lm/executions/running-1", "application/json"),
    ("POST", "/v2/lm/deployments", "application/json"),
    ("POST", "/v2/lm/executions", "application/json"),
]
WRONG_TYPES = {
    "application/merge-patch+json": ["application/json", "text/plain", None],
    "application/json": ["application/merge-patch+json", "text/plain", None],
}


def write_body(method: str, path: str) -> object:
    if method == "POST":
        kind = Kind.DEPLOYMENT if path.endswith("deployments") else Kind.EXECUTION
        return {"configurationId": CONFIGURATIONS[kind][0].id}
    if path.endswith("running-1"):
        return {"targetStatus": "STOPPED"}
    kind = Kind.DEPLOYMENT if path.endswith("deployments") else Kind.EXECUTION
    return bulk_body(kind, ("running-1", TargetStatus.STOPPED))


def cases() -> list[object]:
    found: list[object] = []
    for method, path, declared in WRITES:
        for wrong in WRONG_TYPES[declared]:
            found.append(pytest.param(method, path, wrong, id=f"{method} {path} {wrong}"))
    return found


@pytest.mark.parametrize(("method", "path", "media_type"), cases())
async def test_a_body_of_another_media_type_than_the_spec_declares_is_415(
    sim: Simulator, api: httpx.AsyncClient, method: str, path: str, media_type: str | None
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    sim.add_item(Kind.EXECUTION, "running-1", Status.RUNNING)
    content = httpx.Request("POST", "http://x", json=write_body(method, path)).content
    headers = {} if media_type is None else {"Content-Type": media_type}
    response = await api.request(method, path, content=content, headers=headers)
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "01000415"
    assert violation_codes(sim) == ["UnsupportedMediaType"]
    assert sim.state_of(Kind.DEPLOYMENT, "running-1") is Status.RUNNING
    assert sim.state_of(Kind.EXECUTION, "running-1") is Status.RUNNING
    assert len(sim.items()) == 2


@pytest.mark.parametrize(("method", "path", "media_type"), WRITES, ids=str)
async def test_the_declared_media_type_is_accepted_with_a_charset(
    sim: Simulator, api: httpx.AsyncClient, method: str, path: str, media_type: str
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    sim.add_item(Kind.EXECUTION, "running-1", Status.RUNNING)
    content = httpx.Request("POST", "http://x", json=write_body(method, path)).content
    headers = {"Content-Type": f"{media_type}; charset=utf-8"}
    response = await api.request(method, path, content=content, headers=headers)
    assert response.status_code == 202
    assert sim.violations == []


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_single_patch_accepts_only_stopped(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "stopped-1", Status.STOPPED)
    response = await api.patch(
        f"/v2/lm/{kind.collection}/stopped-1", json={"targetStatus": "DELETED"}
    )
    assert response.status_code == 400
    assert violation_codes(sim) == ["InvalidTargetStatus"]
    assert sim.item(kind, "stopped-1") is not None


@pytest.mark.parametrize(
    "body", [{}, None, {"targetStatus": "STOPPED", "configurationId": "conf-1"}]
)
async def test_single_patch_without_exactly_one_change_is_refused(
    sim: Simulator, api: httpx.AsyncClient, body: object
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING)
    response = await api.patch(
        "/v2/lm/deployments/running-1",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400


async def test_single_patch_may_switch_a_running_deployment_to_another_configuration(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "running-1", Status.RUNNING, configuration_id="sim-config-chat")
    response = await api.patch("/v2/lm/deployments/running-1", json={"configurationId": "conf-new"})
    assert response.status_code == 202
    body = (await api.get("/v2/lm/deployments/running-1")).json()
    assert (body["configurationId"], body["latestRunningConfigurationId"]) == (
        "conf-new",
        "sim-config-chat",
    )


async def test_configuration_switch_of_a_stopped_deployment_is_refused(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "stopped-1", Status.STOPPED)
    response = await api.patch("/v2/lm/deployments/stopped-1", json={"configurationId": "conf-new"})
    assert response.status_code == 412
    assert violation_codes(sim) == ["IllegalReconfiguration"]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_get_of_an_unknown_id_is_404_and_not_a_violation(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    response = await api.get(f"/v2/lm/{kind.collection}/ghost-1")
    assert response.status_code == 404
    assert sim.violations == []


async def test_id_outside_the_pattern_in_a_path_is_refused(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.get("/v2/lm/deployments/abc")
    assert response.status_code == 400
    assert violation_codes(sim) == ["InvalidId"]


@pytest.mark.parametrize(
    "body", [{}, {"configurationId": "no"}, {"configurationId": "conf-1", "ttl": "soon"}]
)
async def test_create_without_a_valid_configuration_is_refused(
    sim: Simulator, api: httpx.AsyncClient, body: object
) -> None:
    response = await api.post("/v2/lm/deployments", json=body)
    assert response.status_code == 400


@pytest.mark.parametrize("kind", list(Kind))
async def test_create_from_a_configuration_the_group_lacks_is_refused_naming_it(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    response = await api.post(f"/v2/lm/{kind.collection}", json={"configurationId": "cfg-nowhere"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert message == "Configuration cfg-nowhere not found in resource group default."
    assert sim.items(kind) == []


@pytest.mark.parametrize("kind", list(Kind))
async def test_create_from_a_configuration_an_item_used_is_accepted(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "old-item", Status.STOPPED, configuration_id="cfg-used")
    response = await api.post(f"/v2/lm/{kind.collection}", json={"configurationId": "cfg-used"})
    assert response.status_code == 202
    assert sim.item(kind, response.json()["id"]) is not None


@pytest.mark.parametrize(
    "path", ["/v2/lm/scenarios", "/v2/lm/deployments/d-1/logs", "/v2/nothing", "/v2/lm"]
)
async def test_a_path_the_api_does_not_serve_is_a_plain_404_without_the_envelope(
    sim: Simulator, api: httpx.AsyncClient, path: str
) -> None:
    """As a wrong URL answers in the wild: whatever serves the host, not the AI API."""
    response = await api.get(path)
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text == "404: Not Found"
    assert violation_codes(sim) == ["UnknownRoute"]
    assert sim.responses[f"GET {path} 404"] == 1


async def test_a_path_outside_the_api_is_a_plain_404_and_no_violation(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.get("/wrong/v2/lm/deployments")
    assert response.status_code == 404
    assert response.headers["Content-Type"].startswith("text/plain")
    assert sim.violations == []


async def test_method_the_api_lacks_is_an_enveloped_405(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.put("/v2/lm/deployments", json={})
    assert response.status_code == 405
    assert "error" in response.json()
