"""What a selector resolves against: the spec's list filters, exactly, and items that say where
they came from and how old they are.

The spec (``deployment.query``/``execution.query``, contract §5.2): ``scenarioId``,
``configurationId``, ``executableIds`` (comma-joined, at most 1000, each ``^[\\w.-]{4,64}$``),
one ``status`` of the seven-value enum, and for executions ``executionScheduleId``; combined
with ``$top``/``$skip``. Anything malformed is a 400 with the AI API's envelope.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.models import Kind, Status
from bulkterm.simulator import Simulator
from tests.simulator.helpers import KIND_PARAMS
from tests.simulator.spec import Spec, load_spec

LONG_AGO = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(load_spec())


async def listed(
    api: httpx.AsyncClient, kind: Kind, params: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await api.get(f"/v2/lm/{kind.collection}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [r["id"] for r in body["resources"]]


def seed_two_scenarios(sim: Simulator, kind: Kind) -> None:
    """``fraud-*`` items in scenario ``fraud`` (two configurations, one executable), and
    ``churn-*`` items in scenario ``churn``."""
    placements = [
        ("fraud-a-1", "cfg-fraud-a", "fraud", "exe-fraud", Status.RUNNING),
        ("fraud-a-2", "cfg-fraud-a", "fraud", "exe-fraud", Status.STOPPED),
        ("fraud-b-1", "cfg-fraud-b", "fraud", "exe-fraud", Status.RUNNING),
        ("churn-1", "cfg-churn", "churn", "exe-churn", Status.RUNNING),
    ]
    for item, configuration, scenario, executable, status in placements:
        sim.add_item(
            kind,
            item,
            status,
            configuration_id=configuration,
            scenario_id=scenario,
            executable_id=executable,
        )


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_scenario_filter_keeps_only_that_scenarios_items(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    body = await listed(api, kind, {"scenarioId": "fraud"})
    assert ids_of(body) == ["fraud-a-1", "fraud-a-2", "fraud-b-1"]
    assert {r["scenarioId"] for r in body["resources"]} == {"fraud"}


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_configuration_filter_keeps_only_that_configurations_items(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    body = await listed(api, kind, {"configurationId": "cfg-fraud-a"})
    assert ids_of(body) == ["fraud-a-1", "fraud-a-2"]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_executable_ids_match_any_of_the_comma_joined_ids(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    body = await listed(api, kind, {"executableIds": "exe-churn,exe-nobody"})
    assert ids_of(body) == ["churn-1"]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_every_filter_given_must_match(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    body = await listed(
        api, kind, {"scenarioId": "fraud", "status": "RUNNING", "executableIds": "exe-fraud"}
    )
    assert ids_of(body) == ["fraud-a-1", "fraud-b-1"]


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_filtered_lists_page_with_top_and_skip_over_the_matches_only(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    first = await listed(api, kind, {"scenarioId": "fraud", "$top": "2", "$skip": "0"})
    second = await listed(api, kind, {"scenarioId": "fraud", "$top": "2", "$skip": "2"})
    assert ids_of(first) == ["fraud-a-1", "fraud-a-2"]
    assert ids_of(second) == ["fraud-b-1"]
    assert first["count"] == second["count"] == 3


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_count_endpoint_takes_the_same_filters(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    response = await api.get(
        f"/v2/lm/{kind.collection}/$count", params={"scenarioId": "fraud", "status": "RUNNING"}
    )
    assert response.status_code == 200
    assert response.text == "2"


@pytest.mark.parametrize("kind", KIND_PARAMS)
@pytest.mark.parametrize("status", list(Status))
async def test_every_value_of_the_specs_status_enum_is_a_valid_filter_for_both_kinds(
    api: httpx.AsyncClient, kind: Kind, status: Status
) -> None:
    # AiDeploymentStatus lists COMPLETED too: a filter by it is valid (and matches nothing).
    response = await api.get(f"/v2/lm/{kind.collection}", params={"status": status.value})
    assert response.status_code == 200


async def test_execution_schedule_filter_keeps_the_runs_of_that_schedule(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "nightly-run-1", Status.COMPLETED, execution_schedule_id="nightly")
    sim.add_item(Kind.EXECUTION, "weekly-run-1", Status.COMPLETED, execution_schedule_id="weekly")
    sim.add_item(Kind.EXECUTION, "manual-run-1", Status.COMPLETED)
    body = await listed(api, Kind.EXECUTION, {"executionScheduleId": "nightly"})
    assert ids_of(body) == ["nightly-run-1"]
    count = await api.get("/v2/lm/executions/$count", params={"executionScheduleId": "weekly"})
    assert count.text == "1"


async def test_executable_ids_may_name_exactly_1000_ids(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    seed_two_scenarios(sim, Kind.DEPLOYMENT)
    names = [f"exe-{n:04d}" for n in range(999)] + ["exe-churn"]
    body = await listed(api, Kind.DEPLOYMENT, {"executableIds": ",".join(names)})
    assert ids_of(body) == ["churn-1"]


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"executableIds": ",".join(f"exe-{n:04d}" for n in range(1001))}, "at most 1000"),
        ({"executableIds": "exe-fraud,ex"}, "'ex'"),
        ({"executableIds": "exe-fraud,exé-unicode"}, "exé-unicode"),
        ({"scenarioId": "a b c d"}, "scenarioId"),
        ({"scenarioId": "x" * 65}, "scenarioId"),
        ({"configurationId": "cfg/1"}, "configurationId"),
        ({"status": "ACTIVE"}, "status"),
        ({"status": "running"}, "status"),
        ({"status": ["RUNNING", "STOPPED"]}, "one value"),
        ({"scenarioId": ["fraud", "churn"]}, "one value"),
    ],
    ids=lambda value: str(value)[:40],
)
@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_a_malformed_filter_is_a_400_with_the_envelope_naming_it(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind, params: dict[str, Any], says: str
) -> None:
    response = await api.get(f"/v2/lm/{kind.collection}", params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "requestId", "target"}
    assert says in error["message"]
    assert [v.code for v in sim.violations] == ["MalformedRequest"]


async def test_a_malformed_execution_schedule_filter_is_a_400(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    response = await api.get("/v2/lm/executions", params={"executionScheduleId": "no"})
    assert response.status_code == 400
    assert "executionScheduleId" in response.json()["error"]["message"]


async def test_a_malformed_filter_on_count_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/v2/lm/deployments/$count", params={"status": "GONE"})
    assert response.status_code == 400
    assert response.json()["error"]["code"]


# -- what items say about themselves ---------------------------------------------------------


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_items_carry_scenario_configuration_executable_and_timestamps(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    (item,) = (await listed(api, kind, {"configurationId": "cfg-churn"}))["resources"]
    assert item["scenarioId"] == "churn"
    assert item["configurationId"] == "cfg-churn"
    assert item["executableId"] == "exe-churn"
    assert {"createdAt", "modifiedAt"} <= set(item)


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_a_back_dated_item_shows_its_creation_time_and_a_later_modification(
    sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    sim.add_item(kind, "old-one", Status.STOPPED, created_at=LONG_AGO)
    (item,) = (await listed(api, kind))["resources"]
    assert item["createdAt"] == "2024-03-01T12:00:00Z"
    assert datetime.fromisoformat(item["modifiedAt"]) >= LONG_AGO


async def test_a_status_change_moves_modified_at_but_never_created_at(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "moving-one", Status.UNKNOWN, created_at=LONG_AGO)
    sim.advance(3600)
    (item,) = (await listed(api, Kind.DEPLOYMENT))["resources"]
    assert item["status"] == "RUNNING"
    assert item["createdAt"] == "2024-03-01T12:00:00Z"
    assert datetime.fromisoformat(item["modifiedAt"]) > LONG_AGO + timedelta(days=365)


async def test_executions_of_a_schedule_name_it_and_manual_ones_do_not(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "nightly-run-1", Status.COMPLETED, execution_schedule_id="nightly")
    sim.add_item(Kind.EXECUTION, "manual-run-1", Status.COMPLETED)
    body = await listed(api, Kind.EXECUTION)
    by_id = {r["id"]: r for r in body["resources"]}
    assert by_id["nightly-run-1"]["executionScheduleId"] == "nightly"
    assert "executionScheduleId" not in by_id["manual-run-1"]


async def test_deployments_never_carry_an_execution_schedule(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.DEPLOYMENT, "served-1", Status.RUNNING, execution_schedule_id="nightly")
    (item,) = (await listed(api, Kind.DEPLOYMENT))["resources"]
    assert "executionScheduleId" not in item


@pytest.mark.parametrize("kind", KIND_PARAMS)
async def test_filtered_lists_of_placed_and_back_dated_items_match_the_spec(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient, kind: Kind
) -> None:
    seed_two_scenarios(sim, kind)
    sim.add_item(kind, "old-one", Status.DEAD, created_at=LONG_AGO)
    response = await api.get(f"/v2/lm/{kind.collection}", params={"scenarioId": "fraud"})
    spec.validate_response(f"/lm/{kind.collection}", "get", 200, response.json())


async def test_a_400_for_a_bad_filter_matches_the_spec(spec: Spec, api: httpx.AsyncClient) -> None:
    response = await api.get("/v2/lm/executions", params={"status": "SLEEPING"})
    spec.validate_response("/lm/executions", "get", 400, response.json())


# -- seeding ---------------------------------------------------------------------------------


def test_a_configuration_keeps_the_scenario_it_was_first_given(sim: Simulator) -> None:
    sim.add_item(
        Kind.DEPLOYMENT, "first-1", Status.RUNNING, configuration_id="cfg-x", scenario_id="sc-one"
    )
    with pytest.raises(ValueError, match="cfg-x belongs to scenario sc-one, not sc-two"):
        sim.add_item(
            Kind.DEPLOYMENT,
            "second-1",
            Status.RUNNING,
            configuration_id="cfg-x",
            scenario_id="sc-two",
        )


def test_a_scenario_without_a_configuration_is_refused(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="need a configuration_id"):
        sim.add_item(Kind.DEPLOYMENT, "lonely-1", Status.RUNNING, scenario_id="sc-one")


def test_a_naive_creation_time_is_refused(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        sim.add_item(Kind.DEPLOYMENT, "naive-1", Status.RUNNING, created_at=datetime(2024, 1, 1))


async def test_the_control_api_seeds_placed_and_back_dated_items(
    sim: Simulator, raw: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    seeded = await raw.post(
        "/_sim/items",
        json={
            "items": [
                {
                    "kind": "Execution",
                    "id": "old-train-1",
                    "status": "COMPLETED",
                    "configuration_id": "cfg-train",
                    "scenario_id": "training",
                    "executable_id": "exe-train",
                    "execution_schedule_id": "nightly",
                    "created_at": "2024-03-01T12:00:00Z",
                }
            ]
        },
    )
    assert seeded.status_code == 201, seeded.text
    (item,) = (await listed(api, Kind.EXECUTION, {"scenarioId": "training"}))["resources"]
    assert (item["id"], item["createdAt"], item["executionScheduleId"]) == (
        "old-train-1",
        "2024-03-01T12:00:00Z",
        "nightly",
    )


async def test_the_control_api_refuses_a_creation_time_without_an_offset(
    raw: httpx.AsyncClient,
) -> None:
    seeded = await raw.post(
        "/_sim/items",
        json={
            "items": [
                {
                    "kind": "Deployment",
                    "id": "naive-1",
                    "status": "RUNNING",
                    "created_at": "2024-03-01T12:00:00",
                }
            ]
        },
    )
    assert seeded.status_code == 400
    assert "created_at" in seeded.json()["error"]


async def test_the_control_api_refuses_a_second_scenario_for_a_configuration(
    raw: httpx.AsyncClient,
) -> None:
    item = {"kind": "Deployment", "status": "RUNNING", "configuration_id": "cfg-x"}
    seeded = await raw.post(
        "/_sim/items",
        json={
            "items": [
                {**item, "id": "first-1", "scenario_id": "sc-one"},
                {**item, "id": "second-1", "scenario_id": "sc-two"},
            ]
        },
    )
    assert seeded.status_code == 400
    assert "belongs to scenario sc-one" in seeded.json()["error"]


# -- configurations (how a scenario's schedules are found) ------------------------------------


async def test_configurations_list_those_in_use_filtered_by_scenario(
    spec: Spec, sim: Simulator, api: httpx.AsyncClient
) -> None:
    seed_two_scenarios(sim, Kind.EXECUTION)
    response = await api.get("/v2/lm/configurations", params={"scenarioId": "fraud"})
    assert response.status_code == 200
    body = response.json()
    spec.validate_response("/lm/configurations", "get", 200, body)
    assert [c["id"] for c in body["resources"]] == ["cfg-fraud-a", "cfg-fraud-b"]
    assert body["count"] == 2


async def test_a_configuration_is_as_old_as_its_oldest_item(
    sim: Simulator, api: httpx.AsyncClient
) -> None:
    sim.add_item(Kind.EXECUTION, "new-1", Status.RUNNING, configuration_id="cfg-aged")
    sim.add_item(
        Kind.EXECUTION, "old-1", Status.COMPLETED, configuration_id="cfg-aged", created_at=LONG_AGO
    )
    response = await api.get("/v2/lm/configurations")
    (configuration,) = response.json()["resources"]
    assert configuration["createdAt"] == "2024-03-01T12:00:00Z"


async def test_a_malformed_configuration_filter_is_a_400(api: httpx.AsyncClient) -> None:
    response = await api.get("/v2/lm/configurations", params={"scenarioId": "bad id"})
    assert response.status_code == 400
