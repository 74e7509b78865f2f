"""Lists and counts: the spec's filters, ``$top``/``$skip`` paging (and SAP SDK's ``top``/``skip``)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Simulator


async def listed(
    api: httpx.AsyncClient, params: dict[str, Any] | None = None, kind: Kind = Kind.DEPLOYMENT
) -> dict[str, Any]:
    response = await api.get(f"/v2/lm/{kind.collection}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [r["id"] for r in body["resources"]]


@pytest.fixture
def catalogue(sim: Simulator) -> None:
    sim.add_item(
        Kind.DEPLOYMENT,
        "serve-small-running",
        Status.RUNNING,
        configuration_id="sim-config-serve-small",
    )
    sim.add_item(
        Kind.DEPLOYMENT,
        "serve-large-running",
        Status.RUNNING,
        configuration_id="sim-config-serve-large",
    )
    sim.add_item(
        Kind.DEPLOYMENT,
        "serve-small-stopped",
        Status.STOPPED,
        configuration_id="sim-config-serve-small",
    )
    sim.add_item(
        Kind.DEPLOYMENT, "chat-running", Status.RUNNING, configuration_id="sim-config-chat"
    )


async def test_status_filter_keeps_items_in_that_status(
    api: httpx.AsyncClient, catalogue: None
) -> None:
    body = await listed(api, {"status": "STOPPED"})
    assert ids_of(body) == ["serve-small-stopped"]


async def test_configuration_filter(api: httpx.AsyncClient, catalogue: None) -> None:
    body = await listed(api, {"configurationId": "sim-config-serve-small"})
    assert ids_of(body) == ["serve-small-running", "serve-small-stopped"]


async def test_scenario_filter(api: httpx.AsyncClient, catalogue: None) -> None:
    body = await listed(api, {"scenarioId": "sim-scenario-chat"})
    assert ids_of(body) == ["chat-running"]


async def test_executable_ids_are_comma_joined(api: httpx.AsyncClient, catalogue: None) -> None:
    body = await listed(api, {"executableIds": "sim-executable-chat,sim-executable-other"})
    assert ids_of(body) == ["chat-running"]


async def test_filters_combine(api: httpx.AsyncClient, catalogue: None) -> None:
    body = await listed(api, {"executableIds": "sim-executable-serve", "status": "RUNNING"})
    assert ids_of(body) == ["serve-small-running", "serve-large-running"]


async def test_execution_schedule_filter_of_executions(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "scheduled-1", Status.RUNNING, execution_schedule_id="nightly-1")
    sim.add_item(Kind.EXECUTION, "manual-1", Status.RUNNING)
    body = await listed(api, {"executionScheduleId": "nightly-1"}, Kind.EXECUTION)
    assert ids_of(body) == ["scheduled-1"]
    assert body["resources"][0]["executionScheduleId"] == "nightly-1"


async def test_count_endpoint_applies_the_same_filters(
    api: httpx.AsyncClient, catalogue: None
) -> None:
    response = await api.get("/v2/lm/deployments/$count", params={"status": "RUNNING", "$top": "1"})
    assert response.text == "3"


@pytest.fixture
def many(sim: Simulator) -> list[str]:
    items = [f"item-{n:03d}" for n in range(25)]
    for item in items:
        sim.add_item(Kind.DEPLOYMENT, item, Status.RUNNING)
    return items


async def test_without_top_every_item_comes_in_creation_order(
    api: httpx.AsyncClient, many: list[str]
) -> None:
    body = await listed(api)
    assert ids_of(body) == many
    assert body["count"] == 25


async def test_dollar_top_and_skip_page_through_every_item_once(
    api: httpx.AsyncClient, many: list[str]
) -> None:
    pages = [await listed(api, {"$top": "10", "$skip": str(skip)}) for skip in (0, 10, 20)]
    assert [len(p["resources"]) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in ids_of(p)] == many


async def test_count_is_the_total_before_paging(api: httpx.AsyncClient, many: list[str]) -> None:
    body = await listed(api, {"$top": "10", "$skip": "20"})
    assert body["count"] == 25


@pytest.mark.simulator(list_count="page")
async def test_count_can_be_configured_to_be_the_page_size(
    api: httpx.AsyncClient, many: list[str]
) -> None:
    body = await listed(api, {"$top": "10", "$skip": "20"})
    assert body["count"] == 5


async def test_plain_top_and_skip_as_sap_python_sdk_sends_them_are_honoured(
    api: httpx.AsyncClient, many: list[str]
) -> None:
    body = await listed(api, {"top": "5", "skip": "5"})
    assert ids_of(body) == many[5:10]


async def test_dollar_top_wins_over_plain_top(api: httpx.AsyncClient, many: list[str]) -> None:
    body = await listed(api, {"$top": "3", "top": "7"})
    assert len(body["resources"]) == 3


@pytest.mark.simulator(accept_plain_top_skip=False)
async def test_plain_top_and_skip_can_be_configured_to_be_ignored(
    api: httpx.AsyncClient, many: list[str]
) -> None:
    body = await listed(api, {"top": "5", "skip": "5"})
    assert ids_of(body) == many


@pytest.mark.parametrize(
    "params",
    [
        {"$top": "100001"},
        {"$top": "-1"},
        {"$skip": "-1"},
        {"$top": "ten"},
        {"top": "-5"},
        {"status": "SLEEPING"},
        {"status": ["RUNNING", "STOPPED"]},
        {"$select": "id"},
        {"configurationId": "no"},
        {"executableIds": "ok-id-1,bad id"},
    ],
    ids=str,
)
async def test_parameters_outside_the_spec_are_refused(
    sim: Simulator, api: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await api.get("/v2/lm/deployments", params=params)
    assert response.status_code == 400
    assert [v.code for v in sim.violations] == ["MalformedRequest"]


async def test_top_of_zero_returns_no_resources_but_the_count(
    api: httpx.AsyncClient, many: list[str]
) -> None:
    body = await listed(api, {"$top": "0"})
    assert body == {"count": 25, "resources": []}


@pytest.mark.simulator(max_result_rows=10)
async def test_a_result_ceiling_answers_413_until_the_client_pages(
    sim: Simulator, api: httpx.AsyncClient, many: list[str]
) -> None:
    unpaged = await api.get("/v2/lm/deployments")
    paged = await api.get("/v2/lm/deployments", params={"$top": "10"})
    assert unpaged.status_code == 413
    assert "Use $top and $skip to paginate" in unpaged.json()["error"]["message"]
    assert paged.status_code == 200
    assert [v.code for v in sim.violations] == ["ResultTooLarge"]


async def test_list_with_select_status_keeps_only_status_fields(
    api: httpx.AsyncClient, many: list[str]
) -> None:
    body = await listed(api, {"$select": "status", "$top": "1"})
    assert set(body["resources"][0]) == {
        "id",
        "configurationId",
        "status",
        "createdAt",
        "modifiedAt",
    }
