"""The calls a selector makes: list matching items with what it filters on, list execution
schedules, pause one. Against the simulator over HTTP on 127.0.0.1 (server behaviour it does
not have, such as ignoring ``$skip`` or failing a PATCH once, through a mock transport)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.errors import (
    EndpointNotFoundError,
    ListPagingError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from bulkterm.aiapi.models import Kind, ScheduleStatus, Status
from bulkterm.simulator import SimClock, Simulator
from tests.aiapi.conftest import envelope

pytestmark = pytest.mark.simulator(simulated_clock=True)

D, E = Kind.DEPLOYMENT, Kind.EXECUTION
LONG_AGO = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
Make = Callable[..., AiApiClient]


def place(sim: Simulator, kind: Kind) -> None:
    """Scenario ``fraud`` (configurations ``cfg-fraud-a``/``-b``) and scenario ``churn``."""
    for item, configuration, scenario, status in [
        ("fraud-a-1", "cfg-fraud-a", "fraud", Status.RUNNING),
        ("fraud-a-2", "cfg-fraud-a", "fraud", Status.STOPPED),
        ("fraud-b-1", "cfg-fraud-b", "fraud", Status.RUNNING),
        ("churn-1", "cfg-churn", "churn", Status.RUNNING),
    ]:
        sim.add_item(
            kind,
            item,
            status,
            configuration_id=configuration,
            scenario_id=scenario,
            executable_id=f"exe-{scenario}",
            created_at=LONG_AGO if item == "fraud-a-1" else None,
        )


# -- list_items ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [D, E])
async def test_list_items_returns_what_a_selector_filters_on(
    simulator: Simulator, client_for: Make, kind: Kind
) -> None:
    place(simulator, kind)
    items = await client_for(simulator).list_items(kind, configuration_id="cfg-fraud-a")
    assert [i.id for i in items] == ["fraud-a-1", "fraud-a-2"]
    first = items[0]
    assert (first.status, first.scenario_id, first.configuration_id, first.executable_id) == (
        Status.RUNNING,
        "fraud",
        "cfg-fraud-a",
        "exe-fraud",
    )
    assert first.created_at == LONG_AGO
    assert first.target_status == ("RUNNING" if kind is D else "COMPLETED")


async def test_list_items_sends_every_filter_to_the_server(
    simulator: Simulator, client_for: Make
) -> None:
    place(simulator, E)
    simulator.add_item(E, "fraud-run-1", Status.RUNNING, execution_schedule_id="nightly")
    client = client_for(simulator)
    items = await client.list_items(
        E,
        scenario_id="fraud",
        executable_ids=["exe-fraud"],
        status=Status.RUNNING,
    )
    assert [i.id for i in items] == ["fraud-a-1", "fraud-b-1"]
    scheduled = await client.list_items(E, execution_schedule_id="nightly")
    assert [(i.id, i.execution_schedule_id) for i in scheduled] == [("fraud-run-1", "nightly")]
    assert client.calls["list executions"] == 2


async def test_list_items_pages_explicitly_and_counts_each_page(
    simulator: Simulator, client_for: Make
) -> None:
    for n in range(5):
        simulator.add_item(D, f"dep-{n:03d}", Status.RUNNING)
    client = client_for(simulator)
    items = await client.list_items(D, page_size=2)
    assert [i.id for i in items] == [f"dep-{n:03d}" for n in range(5)]
    assert client.calls["list deployments"] == 3
    assert simulator.counters["GET /lm/deployments"] == 3


async def test_list_items_reads_whole_items_because_select_offers_only_status(
    simulator: Simulator, client_for: Make
) -> None:
    simulator.add_item(E, "run-1", Status.RUNNING, execution_schedule_id="nightly")
    (item,) = await client_for(simulator).list_items(E)
    assert item.execution_schedule_id == "nightly"
    assert simulator.violations == []


async def test_more_than_1000_executable_ids_are_split_and_the_answers_merged(
    simulator: Simulator, client_for: Make
) -> None:
    place(simulator, D)
    wanted = [f"exe-{n:04d}" for n in range(1500)] + ["exe-fraud", "exe-churn"]
    client = client_for(simulator)
    items = await client.list_items(D, executable_ids=wanted)
    assert sorted(i.id for i in items) == ["churn-1", "fraud-a-1", "fraud-a-2", "fraud-b-1"]
    assert client.calls["list deployments"] >= 2
    assert simulator.violations == []


async def test_long_executable_ids_are_split_before_the_url_grows_past_gateway_limits(
    mock_client: Make,
) -> None:
    lengths: list[int] = []

    def server(request: httpx.Request) -> httpx.Response:
        lengths.append(len(str(request.url)))
        return httpx.Response(200, json={"count": 0, "resources": []})

    wanted = [f"{n:04d}-" + "x" * 59 for n in range(200)]  # 64 characters each
    await mock_client(server).list_items(D, executable_ids=wanted)
    assert len(lengths) >= 3
    assert max(lengths) < 8000


async def test_duplicate_executable_ids_are_sent_once(mock_client: Make) -> None:
    sent: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.params["executableIds"])
        return httpx.Response(200, json={"count": 0, "resources": []})

    await mock_client(server).list_items(D, executable_ids=["exe-a1", "exe-b2", "exe-a1"])
    assert sent == ["exe-a1,exe-b2"]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"scenario_id": "bad id"}, "scenarioId 'bad id'"),
        ({"configuration_id": "abc"}, "configurationId 'abc'"),
        ({"executable_ids": ["exe-ok", "n/a"]}, "executable id 'n/a'"),
        ({"executable_ids": []}, "executable_ids is empty"),
        ({"executable_ids": "exe-one"}, "not one string"),
        ({"execution_schedule_id": "nightly"}, "filters executions only"),
        ({"page_size": 0}, "page_size"),
        ({"page_size": 100_001}, "page_size"),
    ],
    ids=str,
)
async def test_bad_filters_are_refused_before_anything_is_sent(
    simulator: Simulator, client_for: Make, kwargs: dict[str, Any], says: str
) -> None:
    client = client_for(simulator)
    with pytest.raises(ValueError, match=says):
        await client.list_items(D, **kwargs)
    assert client.calls == {}


async def test_list_items_detects_a_server_that_ignores_skip(mock_client: Make) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        top = int(request.url.params["$top"])
        resources = [
            {"id": f"dep-{n:03d}", "status": "RUNNING", "configurationId": "cfg-1",
             "createdAt": "2024-03-01T12:00:00Z"}
            for n in range(top)
        ]  # fmt: skip
        return httpx.Response(200, json={"count": 50, "resources": resources})

    with pytest.raises(ListPagingError, match="does not honour \\$skip"):
        await mock_client(server).list_items(D, page_size=10)


async def test_an_item_without_a_creation_time_is_a_clear_error(mock_client: Make) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        item = {"id": "dep-001", "status": "RUNNING", "configurationId": "cfg-1"}
        return httpx.Response(200, json={"count": 1, "resources": [item]})

    with pytest.raises(PermanentError, match="createdAt"):
        await mock_client(server).list_items(D)


# -- list_execution_schedules --------------------------------------------------------------


@pytest.fixture
def schedules(simulator: Simulator) -> None:
    simulator.add_execution_schedule(
        "fraud-nightly", configuration_id="cfg-fraud-a", scenario_id="fraud", cron="0 0 * * *"
    )
    simulator.add_execution_schedule(
        "fraud-weekly",
        configuration_id="cfg-fraud-b",
        scenario_id="fraud",
        status=ScheduleStatus.INACTIVE,
    )
    simulator.add_execution_schedule(
        "churn-hourly", configuration_id="cfg-churn", scenario_id="churn"
    )


async def test_list_execution_schedules_returns_every_schedule(
    simulator: Simulator, client_for: Make, schedules: None
) -> None:
    client = client_for(simulator)
    found = await client.list_execution_schedules()
    assert [(s.id, s.status, s.configuration_id) for s in found] == [
        ("fraud-nightly", ScheduleStatus.ACTIVE, "cfg-fraud-a"),
        ("fraud-weekly", ScheduleStatus.INACTIVE, "cfg-fraud-b"),
        ("churn-hourly", ScheduleStatus.ACTIVE, "cfg-churn"),
    ]
    assert found[0].cron == "0 0 * * *"
    assert client.calls["list executionSchedules"] == 1


async def test_list_execution_schedules_filters_by_status_and_configuration(
    simulator: Simulator, client_for: Make, schedules: None
) -> None:
    client = client_for(simulator)
    active = await client.list_execution_schedules(status=ScheduleStatus.ACTIVE)
    of_config = await client.list_execution_schedules(configuration_id="cfg-fraud-b")
    assert [s.id for s in active] == ["fraud-nightly", "churn-hourly"]
    assert [s.id for s in of_config] == ["fraud-weekly"]


async def test_schedules_of_a_scenario_are_found_through_its_configurations(
    simulator: Simulator, client_for: Make, schedules: None
) -> None:
    client = client_for(simulator)
    found = await client.list_execution_schedules(scenario_id="fraud")
    assert [s.id for s in found] == ["fraud-nightly", "fraud-weekly"]
    assert client.calls["list configurations"] == 1
    assert client.calls["list executionSchedules"] == 1


async def test_a_configuration_outside_the_scenario_matches_no_schedule(
    simulator: Simulator, client_for: Make, schedules: None
) -> None:
    client = client_for(simulator)
    found = await client.list_execution_schedules(scenario_id="fraud", configuration_id="cfg-churn")
    assert found == []
    assert client.calls["list executionSchedules"] == 0


async def test_a_scenario_without_configurations_has_no_schedules(
    simulator: Simulator, client_for: Make, schedules: None
) -> None:
    client = client_for(simulator)
    assert await client.list_execution_schedules(scenario_id="nobody") == []


@pytest.mark.simulator(execution_schedules=False)
async def test_a_runtime_without_schedules_says_so_in_meta_and_on_the_list(
    simulator: Simulator, client_for: Make
) -> None:
    client = client_for(simulator)
    assert (await client.meta()).execution_schedules is False
    with pytest.raises(EndpointNotFoundError):
        await client.list_execution_schedules()


async def test_meta_tells_the_client_schedules_are_served(
    simulator: Simulator, client_for: Make
) -> None:
    assert (await client_for(simulator).meta()).execution_schedules is True


# -- pause_execution_schedule --------------------------------------------------------------


async def test_pausing_sets_the_schedule_inactive_and_no_execution_starts(
    simulator: Simulator, sim_clock: SimClock, client_for: Make
) -> None:
    simulator.add_execution_schedule("nightly", configuration_id="cfg-1", period_seconds=60)
    client = client_for(simulator)
    await client.pause_execution_schedule("nightly")
    sim_clock.advance(3600)
    view = simulator.execution_schedule("nightly")
    assert view is not None and (view.status, view.runs) == (ScheduleStatus.INACTIVE, 0)
    assert await client.list_items(E, execution_schedule_id="nightly") == []
    assert client.calls["patch executionSchedules"] == 1


async def test_pausing_a_paused_schedule_is_fine(simulator: Simulator, client_for: Make) -> None:
    simulator.add_execution_schedule(
        "nightly", configuration_id="cfg-1", status=ScheduleStatus.INACTIVE
    )
    await client_for(simulator).pause_execution_schedule("nightly")
    view = simulator.execution_schedule("nightly")
    assert view is not None and view.status is ScheduleStatus.INACTIVE


async def test_pausing_an_unknown_schedule_raises_not_found(
    simulator: Simulator, client_for: Make
) -> None:
    with pytest.raises(NotFoundError, match="patch executionSchedules: HTTP 404"):
        await client_for(simulator).pause_execution_schedule("no-such-schedule")


async def test_pausing_refuses_a_malformed_id_before_sending(
    simulator: Simulator, client_for: Make
) -> None:
    client = client_for(simulator)
    with pytest.raises(ValueError, match="execution schedule id 'a/b'"):
        await client.pause_execution_schedule("a/b")
    assert client.calls == {}


async def test_pausing_is_resent_after_a_503_the_server_did_not_act_on(
    mock_client: Make,
) -> None:
    answers = [
        httpx.Response(503, json=envelope("503", "busy")),
        httpx.Response(202, json={"id": "nightly", "message": "Execution Schedule modified"}),
    ]
    bodies: list[bytes] = []

    def server(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return answers.pop(0)

    client = mock_client(server)
    await client.pause_execution_schedule("nightly")
    assert bodies == [b'{"status": "INACTIVE"}'] * 2
    assert client.calls["patch executionSchedules"] == 2


async def test_pausing_is_not_resent_after_a_500_whose_outcome_is_unknown(
    mock_client: Make,
) -> None:
    def server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json=envelope("500", "oops"))

    client = mock_client(server)
    with pytest.raises(TransientError):
        await client.pause_execution_schedule("nightly")
    assert client.calls["patch executionSchedules"] == 1


async def test_pausing_sends_plain_json_as_the_spec_declares(
    simulator: Simulator, client_for: Make
) -> None:
    simulator.add_execution_schedule("nightly", configuration_id="cfg-1")
    await client_for(simulator).pause_execution_schedule("nightly")
    assert simulator.responses["PATCH /lm/executionSchedules/{id} 202"] == 1
    assert simulator.violations == []
